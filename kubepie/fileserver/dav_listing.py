"""HTML directory listings for browsers (GET or HEAD on a collection).

Rendered here rather than by wsgidav's directory browser, which reads its templates and
assets from the installed package at request time: a server that has dropped to a user may
not be allowed to read them any more. The page is self-contained (no assets), escapes every
name, and lists what WebDAV lists: no internal ``.kubepie-*`` entries, no upload temp files,
no symlinks that lead out of the mount. :func:`render` is pure.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import os
import stat
from dataclasses import dataclass
from urllib.parse import quote

from kubepie.fileserver.asgi import Scope, Send, status_page
from kubepie.fileserver.errors import FileServerError, NoSuchMount, from_oserror
from kubepie.fileserver.mounts import Mount, Mounts, split_url_path
from kubepie.fileserver.uploads import is_upload_name

#: Names the server keeps for itself (e.g. the S3 multipart staging directory): not listed.
INTERNAL_PREFIX = ".kubepie-"

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:.2em 1em;text-align:left}td.n{text-align:right}"
)


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    is_dir: bool
    size: int
    mtime: float


def listed(name: str) -> bool:
    """Whether a directory entry is shown to clients at all."""
    return not (name.startswith(INTERNAL_PREFIX) or is_upload_name(name))


def render(url_path: str, entries: list[Entry]) -> str:
    """The listing page of ``url_path`` (decoded, ending in ``/``)."""
    title = html.escape(url_path)
    rows = ['<tr><td><a href="../">../</a></td><td></td><td></td></tr>'] if url_path != "/" else []
    for entry in sorted(entries, key=lambda e: (not e.is_dir, e.name)):
        shown = entry.name + ("/" if entry.is_dir else "")
        href = quote(entry.name) + ("/" if entry.is_dir else "")
        size = "" if entry.is_dir else str(entry.size)
        when = email.utils.formatdate(entry.mtime, usegmt=True) if entry.mtime else ""
        rows.append(
            f'<tr><td><a href="{html.escape(href)}">{html.escape(shown)}</a></td>'
            f'<td class="n">{size}</td><td>{when}</td></tr>'
        )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Index of {title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>Index of {title}</h1><table>"
        "<tr><th>Name</th><th>Size</th><th>Modified</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )


def scan(mount: Mount, segments: list[str], directory: int) -> list[Entry]:
    """The listed entries of the directory ``segments``, open as ``directory`` (resolved
    beneath the mount root); ``OSError`` when it cannot be read."""
    entries: list[Entry] = []
    with os.scandir(directory) as found:
        for item in found:
            if not listed(item.name):
                continue
            try:
                if item.is_symlink():
                    # Followed only while it stays inside the mount (resolved beneath it).
                    st = mount.stat([*segments, item.name])
                    is_dir = stat.S_ISDIR(st.st_mode)
                    if not (is_dir or stat.S_ISREG(st.st_mode)):
                        continue
                else:
                    st = item.stat(follow_symlinks=False)
                    is_dir = item.is_dir(follow_symlinks=False)
                    if not (is_dir or item.is_file(follow_symlinks=False)):
                        continue
            except (OSError, FileServerError):
                continue
            entries.append(Entry(item.name, is_dir, st.st_size, st.st_mtime))
    return entries


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _plain(status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> Answer:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *(extra or [])]
    return Answer(status, headers, text.encode())


class Listing:
    """Answers GET/HEAD on collections with :func:`render`; declines everything else."""

    def __init__(self, mounts: Mounts, prefix: str) -> None:
        self.mounts = mounts
        self.prefix = prefix

    def prepare(self, dav_path: str) -> Answer | None:
        """The answer for ``dav_path`` (raw, below the prefix) if it is a collection, else None.

        Blocking (stat, scandir): run it in a worker thread.
        """
        try:
            segments = split_url_path(dav_path)
            if not segments:
                entries = [Entry(name, True, 0, 0.0) for name in self.mounts]
            else:
                mount = self.mounts[segments[0]]
                try:
                    directory = mount.open(segments[1:], os.O_RDONLY | os.O_DIRECTORY)
                except (NotADirectoryError, FileNotFoundError):
                    return None  # not a collection: wsgidav answers
                try:
                    entries = scan(mount, segments[1:], directory)
                finally:
                    os.close(directory)
            if not dav_path.endswith("/"):
                location = quote(self.prefix + dav_path + "/").encode()
                return _plain(301, "moved\n", [(b"location", location)])
        except NoSuchMount:
            return None
        except OSError as exc:
            error = from_oserror(exc, "listing")
            return _plain(error.status, status_page(error.status, error.reason).decode())
        except FileServerError as exc:
            return _plain(exc.status, status_page(exc.status, exc.reason).decode())
        url_path = self.prefix + "/" + "".join(s + "/" for s in segments)
        page = render(url_path, entries).encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-cache")]
        return Answer(200, headers, page)

    async def maybe_answer(self, scope: Scope, dav_path: str, send: Send) -> bool:
        """Answer and return True when ``dav_path`` is a collection; else return False."""
        answer = await asyncio.to_thread(self.prepare, dav_path)
        if answer is None:
            return False
        headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else answer.body
        await send({"type": "http.response.body", "body": body})
        return True
