"""WebDAV and plain HTTPS under ``/dav/<mount>/<path>``: wsgidav behind an ASGI front.

The front (:class:`DavFront`) does what must happen before wsgidav sees a request:

* it checks the *raw* request path and the ``Destination`` header with
  :func:`split_url_path`, because the ASGI server and wsgidav both decode and normalise paths
  (``%2F`` would become a separator, ``..`` would be folded away) before any check of ours;
* it turns a client disconnect during the body into an error (see
  :func:`kubepie.fileserver.asgi.disconnect_aware`), so a cut PUT is discarded;
* it redirects ``/`` to ``/dav/`` for browsers and answers 404 elsewhere;
* plain GET/HEAD of a file and plain PUT skip the adapter (:mod:`kubepie.fileserver.dav_get`,
  :mod:`kubepie.fileserver.dav_put`), HTML listings of collections are rendered by
  :mod:`kubepie.fileserver.dav_listing`; everything else goes to wsgidav.

wsgidav runs through the a2wsgi adapter with ``block_size`` of at least 1 MiB (the adapter
pays per block). Authentication is done before this app (:class:`kubepie.fileserver.auth.
AuthGate`), so wsgidav's own authenticator is left out of its middleware stack.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from a2wsgi import WSGIMiddleware
from wsgidav.error_printer import ErrorPrinter
from wsgidav.lock_man.lock_storage import LockStorageDict, LockStorageShelve
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from kubepie.fileserver.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    disconnect_aware,
    header,
    send_plain,
)
from kubepie.fileserver.dav_get import PlainGet
from kubepie.fileserver.dav_listing import Listing
from kubepie.fileserver.dav_props import XattrPropertyManager
from kubepie.fileserver.dav_provider import MountsProvider
from kubepie.fileserver.dav_put import PlainPut
from kubepie.fileserver.errors import PathRefused
from kubepie.fileserver.mounts import Mounts, split_url_path

PREFIX = "/dav"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


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
        "middleware_stack": [ErrorPrinter, RequestResolver],
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
    adapter = WSGIMiddleware(cast(Any, _prepare(dav_app, username)), workers=16)
    plain_put = PlainPut(mounts, dav_app.lock_manager, username, block_size)
    plain_get = PlainGet(mounts, block_size)
    return DavFront(cast(ASGIApp, adapter), plain_put, plain_get, Listing(mounts, PREFIX))
