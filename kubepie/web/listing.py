"""Folder listings from WebDAV, and how the pages show them (pure).

The file browser asks the user's file server with ``PROPFIND`` (``Depth: 1``) for the three
properties it shows, and :func:`parse_multistatus` turns the answer into :class:`Entry` rows.
The answer comes from our own file server, but names in it are the user's (anything POSIX
allows), so parsing refuses DTDs outright (no entity expansion is ever attempted) and takes
names from the decoded ``href`` segments, never from the XML's text as markup.
"""

from __future__ import annotations

import email.utils
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from kubepie.web.errors import FileServerFailed, PageNotFound

_DAV = "{DAV:}"
#: The ``PROPFIND`` body: only what the listing shows.
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/>"
    b"</D:prop></D:propfind>"
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of a folder: a file or a sub-folder."""

    name: str
    is_dir: bool
    size: int | None
    modified: float | None


def dav_target(segments: Sequence[str], *, folder: bool = False) -> bytes:
    """The raw ``/dav/...`` request target of a storage path (each segment percent-encoded)."""
    path = "/dav/" + "/".join(quote(s, safe="") for s in segments)
    if folder and segments:
        path += "/"
    return path.encode("ascii")


def _segments_of(href: str) -> tuple[str, ...]:
    path = urlsplit(href).path
    return tuple(unquote(part) for part in path.split("/") if part)


def _http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text.strip()).timestamp()
    except (TypeError, ValueError):
        return None


def parse_multistatus(body: bytes, folder: Sequence[str]) -> list[Entry]:
    """The children of ``folder`` (storage segments, mount first) in a ``207`` answer.

    Folders first, then files, each by name (case-insensitive). The folder itself is left
    out; if it is a file, :class:`PageNotFound` says so.
    """
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise FileServerFailed("the file server's listing holds a DTD")
    try:
        root = ET.fromstring(body)  # noqa: S314 (no DTD: checked above)
    except ET.ParseError as exc:
        raise FileServerFailed("the file server's listing is not valid XML") from exc
    base = ("dav", *folder)
    entries: list[Entry] = []
    itself: Entry | None = None
    for response in root.iter(f"{_DAV}response"):
        href = response.findtext(f"{_DAV}href")
        if href is None:
            continue
        segments = _segments_of(href)
        if segments[: len(base)] != base or len(segments) not in (len(base), len(base) + 1):
            continue
        is_dir, size, modified = False, None, None
        for propstat in response.iter(f"{_DAV}propstat"):
            status = propstat.findtext(f"{_DAV}status") or ""
            if " 200 " not in status + " ":
                continue
            prop = propstat.find(f"{_DAV}prop")
            if prop is None:
                continue
            kind = prop.find(f"{_DAV}resourcetype")
            if kind is not None and kind.find(f"{_DAV}collection") is not None:
                is_dir = True
            length = prop.findtext(f"{_DAV}getcontentlength")
            if length and length.strip().isdigit():
                size = int(length)
            modified = _http_date(prop.findtext(f"{_DAV}getlastmodified")) or modified
        entry = Entry(segments[-1], is_dir, None if is_dir else size, modified)
        if len(segments) == len(base):
            itself = entry
        else:
            entries.append(entry)
    if itself is not None and not itself.is_dir:
        raise PageNotFound(f"{'/' + '/'.join(folder)} is a file, not a folder.")
    entries.sort(key=lambda e: (not e.is_dir, e.name.casefold(), e.name))
    return entries


def human_size(size: int | None) -> str:
    """``1.5 MiB``-style size; an em dash for folders and unknown sizes."""
    if size is None:
        return "—"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def human_time(timestamp: float | None) -> str:
    """``2026-01-31 14:05 UTC``; an em dash when unknown."""
    if timestamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def iso_time(timestamp: float | None) -> str:
    """The machine-readable form for ``<time datetime=...>``."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
