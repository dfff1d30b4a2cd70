"""The one place errors become HTTP responses, in each listener's own dialect.

* API routes (``/api/...``, ``/login`` ...): ``{"error": <kind>, "message": <text>}`` JSON;
* WebDAV (``/dav/...``): a short ``text/plain`` body;
* 401 always carries ``WWW-Authenticate`` for both Bearer and Basic, so browsers, WebDAV
  clients (litmus, rclone, davfs2) and token clients all know how to retry.

The status comes from the error's ``status`` attribute (router, identity and credential errors
all have one); anything else is a 500 whose details stay in the log.
"""

from __future__ import annotations

import json
import logging

from starlette.types import Scope, Send

from identity.errors import IdentityError
from kubepie.credentials.errors import CredentialError, CredentialRefused
from kubepie.router.errors import RouterError

log = logging.getLogger(__name__)

CHALLENGES: list[tuple[bytes, bytes]] = [
    (b"www-authenticate", b'Bearer realm="kubepie"'),
    (b"www-authenticate", b'Basic realm="kubepie", charset="UTF-8"'),
]
KNOWN = (RouterError, IdentityError, CredentialError)
#: Packages whose errors carry their HTTP ``status`` (the backend's too, without importing it).
_OURS = ("kubepie.", "identity.")


def is_known(exc: BaseException) -> bool:
    """An error of ours that says its HTTP status (anything else is an internal error)."""
    if isinstance(exc, KNOWN):
        return True
    status = getattr(exc, "status", None)
    return isinstance(status, int) and type(exc).__module__.startswith(_OURS)


def status_of(exc: BaseException) -> int:
    status = getattr(exc, "status", 500) if is_known(exc) else 500
    return status if isinstance(status, int) and 400 <= status <= 599 else 500


def kind_of(exc: BaseException) -> str:
    """The ``error`` field of a JSON error: the error's class name, except that every refused
    app credential is ``CredentialRefused`` (no such key and a wrong secret look the same)."""
    return "CredentialRefused" if isinstance(exc, CredentialRefused) else type(exc).__name__


def message_of(exc: BaseException) -> str:
    if is_known(exc):
        return str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    log.error("unexpected error", exc_info=exc)
    return "internal error"


def error_headers(status: int) -> list[tuple[bytes, bytes]]:
    return list(CHALLENGES) if status == 401 else []


def close_if_body_announced(scope: Scope) -> list[tuple[bytes, bytes]]:
    """``connection: close`` for an error answered to a request that announced a body.

    That body may be unread or half read: a client that sent ``Expect: 100-continue``
    withholds it once the answer comes first, and a kept-alive connection would then parse
    the client's next request as the rest of this body. Closing costs a reconnect, on errors
    only.
    """
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return [(b"connection", b"close")]
    return []


async def send_error(
    send: Send,
    exc: BaseException,
    *,
    json_body: bool,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> int:
    """Answer ``exc``; returns the status sent."""
    status = status_of(exc)
    message = message_of(exc)
    if json_body:
        body = json.dumps({"error": kind_of(exc), "message": message}).encode()
        ctype = b"application/json"
    else:
        body = f"{status} {message}\n".encode()
        ctype = b"text/plain; charset=utf-8"
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + error_headers(status) + (extra_headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status
