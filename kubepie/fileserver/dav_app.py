"""WebDAV and plain HTTPS under ``/dav/<mount>/<path>``: wsgidav behind an ASGI front.

The front (:class:`DavFront`) does what must happen before wsgidav sees a request:

* it checks the *raw* request path and the ``Destination`` header with
  :func:`split_url_path`, because the ASGI server and wsgidav both decode and normalise paths
  (``%2F`` would become a separator, ``..`` would be folded away) before any check of ours;
* it turns a client disconnect during the body into an error (see
  :func:`kubepie.fileserver.asgi.disconnect_aware`), so a cut PUT is discarded;
* it redirects ``/`` to ``/dav/`` for browsers and answers 404 elsewhere;
* it refuses what would make the server hold an unbounded amount in memory: ``PROPFIND``
  with ``Depth: infinity`` (or without Depth, which means infinity) gets 403 with the
  ``DAV:propfind-finite-depth`` precondition (RFC 4918 §9.1, as Apache's mod_dav does by
  default), and a request body other than a PUT's (wsgidav reads PROPFIND, PROPPATCH, LOCK,
  COPY and MOVE bodies whole) over :data:`MAX_XML_BODY` gets 413;
* it drops ``Date`` and ``Server`` headers of the applications behind it: the HTTP server
  adds the one ``Date`` (standalone), or the router does (behind it), never both;
* plain GET/HEAD of a file and plain PUT skip the adapter (:mod:`kubepie.fileserver.dav_get`,
  :mod:`kubepie.fileserver.dav_put`), HTML listings of collections are rendered by
  :mod:`kubepie.fileserver.dav_listing`; everything else goes to wsgidav.

Errors are KubePie's own: :class:`ErrorPages` replaces wsgidav's error printer (whose HTML
pages carry its version, a timestamp and internal details) and turns filesystem errors into
the status :mod:`kubepie.fileserver.errors` gives them (``ENAMETOOLONG`` is 400, not 500);
:func:`plain_status_pages` rewrites the few HTML status pages wsgidav makes elsewhere. Bodies
are ``text/plain`` (``404 Not Found``), or ``DAV:error`` XML where a precondition applies.

wsgidav runs through the a2wsgi adapter with ``block_size`` of at least 1 MiB (the adapter
pays per block). Authentication is done before this app (:class:`kubepie.fileserver.auth.
AuthGate`), so wsgidav's own authenticator is left out of its middleware stack.
"""

from __future__ import annotations

import datetime
import email.utils
import http
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from a2wsgi import WSGIMiddleware
from wsgidav.dav_error import DAVError
from wsgidav.lock_man.lock_storage import LockStorageDict, LockStorageShelve
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from kubepie.fileserver.asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    disconnect_aware,
    header,
    send_plain,
    status_page,
)
from kubepie.fileserver.dav_get import PlainGet
from kubepie.fileserver.dav_listing import Listing
from kubepie.fileserver.dav_props import XattrPropertyManager
from kubepie.fileserver.dav_provider import MountsProvider
from kubepie.fileserver.dav_put import PlainPut
from kubepie.fileserver.errors import FileServerError, PathRefused, kind_for_errno
from kubepie.fileserver.mounts import Mounts, split_url_path

PREFIX = "/dav"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

logger = logging.getLogger(__name__)

#: Largest request body of a method other than PUT, in bytes. Such bodies are small XML
#: documents (PROPFIND, PROPPATCH, LOCK; COPY/MOVE bodies are ignored) that wsgidav reads
#: whole into memory; litmus's largest is under 10 KiB, so 1 MiB leaves ample room.
MAX_XML_BODY = 1 << 20

#: The answer to a PROPFIND of infinite depth (RFC 4918 §9.1, §16).
FINITE_DEPTH_ERROR = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'
)

_DROPPED_HEADERS = frozenset({b"date", b"server"})


def _reason_of(exc: BaseException) -> tuple[int | None, str | None]:
    """The status and reason of ours behind ``exc`` (a DAVError made from an ``OSError`` or
    a :class:`FileServerError`), following its cause chain; ``(None, None)`` if none."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, FileServerError):
            return seen.status, seen.reason
        if isinstance(seen, OSError) and seen.errno is not None:
            kind = kind_for_errno(seen.errno)
            return kind.status, kind.reason
        source = getattr(seen, "src_exception", None)
        seen = source if isinstance(source, BaseException) else seen.__cause__
    return None, None


def _error_answer(exc: BaseException) -> tuple[str, list[tuple[str, str]], bytes]:
    """WSGI status, headers and body for an exception raised inside wsgidav."""
    headers: list[tuple[str, str]] = []
    condition = None
    add_body = True
    if isinstance(exc, DAVError):
        status = exc.value
        condition = exc.err_condition
        headers.extend(exc.add_headers or [])
        add_body = exc.add_body
        ours, reason = _reason_of(exc)
        if status == 500 and ours is not None:
            status = ours  # wsgidav's own conversion of an OSError it met
    else:
        ours, reason = _reason_of(exc)
        status = ours or 500
    if status >= 500 and status != 507:
        logger.error("WebDAV request failed with %d", status, exc_info=exc)
    try:
        line = f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        line = f"{status} Error"
    if status in (204, 304) or not add_body:
        return line, [*headers, ("Content-Length", "0")], b""
    if condition is not None:
        body = condition.as_string().encode()
        ctype = "application/xml; charset=utf-8"
    else:
        body = status_page(status, reason)
        ctype = "text/plain; charset=utf-8"
    return line, [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers], body


class ErrorPages(BaseMiddleware):  # type: ignore[misc]
    """wsgidav middleware in place of its ``ErrorPrinter``: the same job (turn exceptions
    raised below it into answers) with KubePie's bodies and statuses (see the module doc)."""

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterator[bytes]:
        pending: list[tuple[str, list[tuple[str, str]], Any]] = []

        def remember(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            pending[:] = [(status, headers, exc_info)]

        started = False
        try:
            app_iter = self.next_app(environ, remember)
            try:
                for chunk in app_iter:
                    if not started:
                        start_response(*pending[0])
                        started = True
                    yield chunk
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
            if not started:
                start_response(*pending[0])
            return
        except Exception as exc:
            if started:
                raise  # the answer is under way: only the connection can still say so
            status, headers, body = _error_answer(exc)
        start_response(status, headers)
        yield body


def plain_status_pages(app: WSGIApp) -> WSGIApp:
    """Rewrite the HTML status pages wsgidav sends without raising (201 Created after a
    MKCOL, an error of a COPY's single resource ...) into :func:`status_page` bodies.

    Only HTML that cannot be a file's content is touched: any status but 2xx, and every
    answer to a method other than GET and HEAD (wsgidav's directory browser is off).
    """

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        replacement: list[bytes] = []

        def rewrite(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status[:3])
            ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
            if ctype.lower().startswith("text/html") and (
                not 200 <= code < 300 or method not in ("GET", "HEAD")
            ):
                body = status_page(code)
                replacement.append(body)
                kept = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in ("content-type", "content-length")
                ]
                headers = [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    *kept,
                ]
            return start_response(status, headers, exc_info)

        result = app(environ, rewrite)
        try:
            for chunk in result:
                if not replacement:
                    yield chunk
            if replacement:
                yield replacement[0]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return wrapped


def wsgidav_config(mounts: Mounts, *, state_dir: Path | None, block_size: int) -> dict[str, Any]:
    """The wsgidav configuration: one provider for all mounts, xattr properties, locks."""
    provider = MountsProvider(mounts)
    if state_dir is not None:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        locks: Any = LockStorageShelve(str(state_dir / "dav-locks"))
    else:
        locks = LockStorageDict()
    return {
        "mount_path": PREFIX,
        "provider_mapping": {"/": provider},
        "property_manager": XattrPropertyManager(provider.file_for_ref_url),
        "lock_storage": locks,
        "block_size": block_size,
        # No WsgiDavDirBrowser: it reads templates from the package at request time, which a
        # dropped process may not be allowed to do; dav_listing renders listings instead.
        "middleware_stack": [ErrorPages, RequestResolver],
        "verbose": 1,
        "logging": {"enable": False},
        "suppress_version_info": True,
        "add_header_MS_Author_Via": True,
        "dir_browser": {"enable": False},
    }


def if_modified_since_inclusive(value: str) -> str | None:
    """``If-Modified-Since`` moved one second later, or None when it is not a valid date.

    wsgidav answers 304 only when the date is *after* the file's mtime; RFC 9110 asks for 304
    when the resource was not modified after it, so a client echoing ``Last-Modified`` gets 304.
    """
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return email.utils.format_datetime(when + datetime.timedelta(seconds=1), usegmt=True)


def _prepare(app: WSGIApp, username: str) -> WSGIApp:
    """Tell wsgidav who the (already authenticated) caller is (it records lock owners), and
    make ``If-Modified-Since`` inclusive (see :func:`if_modified_since_inclusive`)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgidav.auth.user_name"] = username
        environ["wsgidav.auth.realm"] = "kubepie"
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if since is not None:
            moved = if_modified_since_inclusive(since)
            if moved is None:
                del environ["HTTP_IF_MODIFIED_SINCE"]  # an invalid date is ignored (RFC 9110)
            else:
                environ["HTTP_IF_MODIFIED_SINCE"] = moved
        return app(environ, start_response)

    return wrapped


def check_request_paths(raw_path: bytes, destination: str | None) -> None:
    """Refuse (:class:`PathRefused`) a path or Destination that could leave its mount."""
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError as exc:
        raise PathRefused("request path is not plain ASCII") from exc
    split_url_path(path)
    if destination:
        dest = urlsplit(destination).path
        if dest != PREFIX and not dest.startswith(PREFIX + "/"):
            raise PathRefused("Destination lies outside /dav")
        split_url_path(dest)


def without_own_headers(send: Send) -> Send:
    """``send`` minus the ``Date`` and ``Server`` headers of the applications behind it."""

    async def filtered(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v) for k, v in message.get("headers", ()) if k.lower() not in _DROPPED_HEADERS
            ]
            message = {**message, "headers": headers}
        await send(message)

    return filtered


Refusal = Callable[[Send], Any]


def refuse_unbounded(method: str, depth: str | None, content_length: str | None) -> Refusal | None:
    """How to refuse a request whose answer or body would be unbounded in memory, or None.

    ``PROPFIND`` without ``Depth`` means infinity (RFC 4918 §9.1); both get 403 with the
    ``propfind-finite-depth`` precondition. A body over :data:`MAX_XML_BODY` of any method
    but PUT gets 413 (a malformed length is left to the server's parser and wsgidav's 400).
    """
    if method == "PROPFIND" and (depth or "infinity").strip().lower() == "infinity":

        async def finite_depth(send: Send) -> None:
            await send_xml_error(send, 403, FINITE_DEPTH_ERROR)

        return finite_depth
    if method != "PUT" and content_length is not None:
        try:
            length = int(content_length.strip())
        except ValueError:
            return None
        if length > MAX_XML_BODY:

            async def too_large(send: Send) -> None:
                text = f"request body over {MAX_XML_BODY} bytes"
                await send_plain(
                    send, 413, status_page(413, text).decode(), [(b"connection", b"close")]
                )

            return too_large
    return None


async def send_xml_error(send: Send, status: int, body: bytes) -> None:
    """Answer ``status`` with a ``DAV:error`` document."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/xml; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class DavFront:
    """The ASGI app serving ``/dav``: path checks, then wsgidav through the adapter."""

    def __init__(
        self,
        dav: ASGIApp,
        plain_put: PlainPut | None = None,
        plain_get: PlainGet | None = None,
        listing: Listing | None = None,
    ) -> None:
        self.dav = dav
        self.plain_put = plain_put
        self.plain_get = plain_get
        self.listing = listing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        send = without_own_headers(send)
        path: str = scope["path"]
        if path == "/" and scope["method"] in ("GET", "HEAD"):
            await send_plain(send, 307, "see /dav/\n", [(b"location", b"/dav/")])
            return
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await send_plain(send, 404, "not found\n")
            return
        raw = scope.get("raw_path") or path.encode()
        try:
            check_request_paths(raw, header(scope, "destination"))
        except PathRefused as exc:
            await send_plain(send, exc.status, f"{exc}\n")
            return
        method, dav_path = scope["method"], raw[len(PREFIX) :].decode("ascii")
        refusal = refuse_unbounded(method, header(scope, "depth"), header(scope, "content-length"))
        if refusal is not None:
            await refusal(send)
            return
        if method in ("GET", "HEAD"):
            if self.plain_get is not None:
                get_plan = self.plain_get.plan(scope, dav_path)
                if get_plan is not None:
                    await self.plain_get.run(get_plan, send)
                    return
            if self.listing is not None and await self.listing.maybe_answer(scope, dav_path, send):
                return
        elif method == "PUT" and self.plain_put is not None:
            put_plan = self.plain_put.plan(scope, dav_path)
            if put_plan is not None:
                await self.plain_put.run(put_plan, receive, send)
                return
        scope = dict(scope)
        scope["root_path"] = scope.get("root_path", "") + PREFIX
        await self.dav(scope, disconnect_aware(receive), send)


def create_dav_app(
    mounts: Mounts, *, username: str, state_dir: Path | None, block_size: int
) -> ASGIApp:
    """The WebDAV ASGI app for ``mounts`` (authentication goes in front of it)."""
    config = wsgidav_config(mounts, state_dir=state_dir, block_size=block_size)
    dav_app = WsgiDAVApp(config)
    wsgi = _prepare(plain_status_pages(dav_app), username)
    adapter = WSGIMiddleware(cast(Any, wsgi), workers=16)
    plain_put = PlainPut(mounts, dav_app.lock_manager, username, block_size)
    plain_get = PlainGet(mounts, block_size)
    return DavFront(cast(ASGIApp, adapter), plain_put, plain_get, Listing(mounts, PREFIX))
