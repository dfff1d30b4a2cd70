"""The file browser: ``/`` (mounts), ``/files/<mount>/<path>/`` (a folder) and its forms,
``/download/<mount>/<path>`` (a file, streamed as an attachment).

Folder URLs end with ``/``; their path is read from the raw (percent-encoded) request path and
decoded with the router's own rules (:func:`kubepie.router.paths.split_segments`), so a page
names exactly the file the file server will touch. The forms POST back to the folder with
``?op=upload|mkdir|rename|delete`` and answer ``303`` to the folder with what was done; delete
and rename go through a page of their own first (the confirmation step), so no JavaScript is
needed anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubepie.router.paths import split_segments
from kubepie.web.errors import BadForm, PageNotFound, PermissionDenied
from kubepie.web.files import UserFiles, shown
from kubepie.web.guard import Guard, WebSession
from kubepie.web.settings import mount_rank
from kubepie.web.upload import UploadStream, boundary_of, check_name, existing_name

FILES = "/files"
DOWNLOAD = "/download"
#: What the folder page says after a form: ``?done=<code>``.
DONE = {
    "upload": "Uploaded {n} file(s).",
    "mkdir": "Folder created.",
    "rename": "Renamed.",
    "delete": "Deleted.",
}


def url_of(prefix: str, segments: Sequence[str], *, folder: bool) -> str:
    """The UI URL of a storage path (segments percent-encoded)."""
    path = prefix + "/" + "/".join(quote(s, safe="") for s in segments)
    return path + "/" if folder and segments else path


def segments_of(request: Request, prefix: str) -> tuple[str, ...]:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    text = raw.decode("ascii", "replace").split("?", 1)[0]
    return split_segments(text[len(prefix) :])


def breadcrumbs(segments: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, url)`` of each folder from the mount down (pure)."""
    return [
        (name, url_of(FILES, segments[: i + 1], folder=True)) for i, name in enumerate(segments)
    ]


def addresses(public_url: str, s3_url: str | None, segments: Sequence[str]) -> dict[str, str]:
    """The WebDAV and S3 addresses of a folder, to copy (pure)."""
    out = {"WebDAV": public_url + url_of("/dav", segments, folder=True)}
    if s3_url is not None and segments:
        key = "/".join(segments[1:])
        out["S3"] = f"s3://{segments[0]}/{key + '/' if key else ''}"
        out["S3 endpoint"] = s3_url
    return out


class FileBrowser:
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def routes(self) -> list[BaseRoute]:
        g = self.guard
        return [
            Route("/", g.handler(self.home), methods=["GET"]),
            Route(FILES, g.handler(self.to_home), methods=["GET"]),
            Route(FILES + "/{rest:path}", g.handler(self.folder), methods=["GET"]),
            Route(FILES + "/{rest:path}", g.handler(self.change), methods=["POST"]),
            Route(DOWNLOAD + "/{rest:path}", _Asgi(self.download), methods=["GET", "HEAD"]),
        ]

    def _files(self, session: WebSession) -> UserFiles:
        return UserFiles(self.guard.ctx, session.principal)

    async def to_home(self, request: Request) -> Response:
        return RedirectResponse("/", status_code=303)

    async def home(self, request: Request) -> Response:
        session = await self.guard.session(request)
        if session is None:
            return self.guard.page("landing.html", self.guard.context(None, title="Welcome"))
        order = self.guard.settings.mount_order
        found = await self._files(session).list(())
        mounts = sorted(found, key=lambda m: mount_rank(m.name, order))
        context = self.guard.context(
            session,
            title="Your files",
            nav="files",
            mounts=[(m.name, url_of(FILES, (m.name,), folder=True)) for m in mounts],
            read_only=self.guard.settings.read_only_mounts,
        )
        return self.guard.page("home.html", context)

    async def folder(self, request: Request) -> Response:
        session = await self.guard.require(request)
        segments = segments_of(request, FILES)
        if not segments:
            return RedirectResponse("/", status_code=303)
        if not request.url.path.endswith("/"):
            return RedirectResponse(url_of(FILES, segments, folder=True), status_code=303)
        entries = await self._files(session).list(segments)
        names = {e.name for e in entries}
        query = request.query_params
        done = DONE.get(query.get("done", ""))
        settings = self.guard.settings
        rows: list[dict[str, Any]] = [
            {
                "entry": e,
                "url": url_of(
                    FILES if e.is_dir else DOWNLOAD, (*segments, e.name), folder=e.is_dir
                ),
                "rename": f"?rename={quote(e.name, safe='')}",
                "delete": f"?delete={quote(e.name, safe='')}",
            }
            for e in entries
        ]
        context = self.guard.context(
            session,
            title=shown(segments),
            nav="files",
            flash=done.format(n=query.get("n", "")[:6]) if done else None,
            crumbs=breadcrumbs(segments),
            path=shown(segments),
            rows=rows,
            addresses=addresses(settings.public_url, settings.s3_url, segments),
            read_only=segments[0] in settings.read_only_mounts,
        )
        for action in ("rename", "delete"):
            name = query.get(action)
            if name is not None:
                if name not in names:
                    raise PageNotFound(f"There is no {name!r} in {shown(segments)}.")
                entry = next(e for e in entries if e.name == name)
                context |= {"entry": entry, "title": f"{action.capitalize()} {name}"}
                return self.guard.page(f"{action}.html", context)
        return self.guard.page("folder.html", context)

    async def change(self, request: Request) -> Response:
        session = await self.guard.require(request)
        segments = segments_of(request, FILES)
        if not segments:
            raise PageNotFound("There is no folder to change here.")
        op = request.query_params.get("op", "")
        files = self._files(session)
        back = url_of(FILES, segments, folder=True)
        if op == "upload":
            stream = UploadStream(
                boundary_of(request.headers.get("content-type", "")),
                lambda token: self.guard.check_token(request, token),
                lambda name, chunks: files.put(segments, name, chunks),
            )
            stored = await stream.run(request.stream())
            return RedirectResponse(f"{back}?done=upload&n={len(stored)}", status_code=303)
        form = await self.guard.form(request)
        try:
            await self._change(files, segments, op, form)
        except PermissionDenied as exc:
            if segments[0] in self.guard.settings.read_only_mounts:
                raise PermissionDenied(
                    f"{exc} The storage area {segments[0]} is read-only for everyone: nothing "
                    "can be created, renamed or deleted in it."
                ) from exc
            raise
        return RedirectResponse(f"{back}?done={op}", status_code=303)

    async def _change(
        self, files: UserFiles, segments: Sequence[str], op: str, form: dict[str, str]
    ) -> None:
        if op == "mkdir":
            await files.mkdir(segments, check_name(form.get("name", "")))
        elif op == "rename":
            old, new = existing_name(form.get("name", "")), check_name(form.get("new_name", ""))
            if old != new:
                await files.move(segments, old, new)
        elif op == "delete":
            await files.delete(segments, existing_name(form.get("name", "")))
        else:
            raise BadForm(f"unknown operation {op[:20]!r}")

    async def download(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Raw ASGI: the file streams from the file server to the browser."""
        request = Request(scope, receive)
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            session = await self.guard.require(request)
            segments = segments_of(request, DOWNLOAD)
            if len(segments) < 2:
                raise PageNotFound("Choose a file to download.")
            files = self._files(session)
            await files.download(segments, scope["method"], scope["headers"], receive, watched)
        except Exception as exc:
            if started:
                raise  # mid-stream: the browser sees the download fail
            await (await self.guard.error(request, exc))(scope, receive, send)


class _Asgi:
    """A raw ASGI endpoint for a route (Starlette wraps plain functions as handlers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
