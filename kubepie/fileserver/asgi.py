"""Small ASGI helpers shared by the file server's middleware: types, headers, plain replies."""

from __future__ import annotations

import http

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "ClientDisconnected", "Message", "Receive", "Scope", "Send"]


class ClientDisconnected(Exception):
    """The client went away before the request body was complete."""


def header(scope: Scope, name: str) -> str | None:
    """The first value of header ``name`` (lower case), decoded as latin-1, or None."""
    key = name.encode()
    for k, v in scope.get("headers", ()):
        if k.lower() == key:
            value: str = v.decode("latin-1")
            return value
    return None


def status_page(status: int, reason: str | None = None) -> bytes:
    """The plain-text body of an error (or bare status) answer: ``404 Not Found``, with a
    short ``reason`` of ours when there is one. Never a path, a version or a time."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"{status} {phrase}{f': {reason}' if reason else ''}\n".encode()


async def send_plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with ``status`` and a short ``text/plain`` body."""
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def disconnect_aware(receive: Receive) -> Receive:
    """``receive`` that raises :class:`ClientDisconnected` instead of returning a disconnect.

    A WSGI adapter turns a disconnect into an early end of the body; a PUT would then store a
    truncated file. Raising makes the upload fail, so the temporary file is discarded.
    """

    async def guarded() -> Message:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("client disconnected during the request body")
        return message

    return guarded
