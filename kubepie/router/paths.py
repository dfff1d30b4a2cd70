"""Pure request-path logic: which storage path a request touches, and what it does there.

The router checks credentials' prefixes and WLCG scopes against the *decoded* segments of the
path, exactly as the file server will resolve them, so the two can never disagree:

* a segment that decodes to something containing ``/`` or NUL (``%2F``, ``%00``), and
  ``.`` / ``..`` segments, are refused outright (400 for WebDAV, ``AccessDenied`` for S3):
  there is no reading of them that a check could rely on. Any other character is a valid
  file name character on POSIX and is left to the file server;
* empty segments (``//``) are ignored, as the file server does.

Storage paths are ``/<mount>/<dir>/...``: the same space WLCG ``storage.*`` scopes and
credential prefixes are written in (``storage.read:/home`` is the ``home`` mount).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from identity.scopes import Operation
from kubepie.fileserver.errors import PathRefused
from kubepie.fileserver.mounts import split_url_path
from kubepie.router.errors import BadRequest

DAV_PREFIX = "/dav"

#: Methods that only read. Everything else writes (PUT, DELETE, MKCOL, MOVE, COPY, PROPPATCH,
#: LOCK, UNLOCK, POST and any method we do not know: unknown means "may change data").
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT", "SEARCH"})


@dataclass(frozen=True, slots=True)
class StoragePath:
    """Decoded path segments, mount first (empty: the list of mounts)."""

    segments: tuple[str, ...]

    @property
    def mount(self) -> str | None:
        return self.segments[0] if self.segments else None

    @property
    def text(self) -> str:
        """``/mount/dir/file``: the path as scopes and accounting write it."""
        return "/" + "/".join(self.segments)


def split_segments(raw: str) -> tuple[str, ...]:
    """Decode a raw (percent-encoded) path into safe segments, or raise :class:`BadRequest`.

    The file server's own rule (:func:`kubepie.fileserver.mounts.split_url_path`), so that
    the router checks exactly the segments the file server will resolve.
    """
    try:
        return tuple(split_url_path(raw))
    except PathRefused as exc:
        raise BadRequest(str(exc)) from exc


def dav_path(raw_path: str) -> StoragePath:
    """The storage path of a ``/dav/...`` request (``raw_path`` still percent-encoded)."""
    if raw_path != DAV_PREFIX and not raw_path.startswith(DAV_PREFIX + "/"):
        raise BadRequest("not a WebDAV path")
    return StoragePath(split_segments(raw_path[len(DAV_PREFIX) :]))


def s3_path(raw_path: str, list_prefix: str | None) -> StoragePath:
    """The storage path an S3 request touches: bucket, then the key split on ``/``.

    A bucket listing with a ``prefix`` parameter touches the directory the prefix names (a
    trailing partial name is dropped: ``prefix=projects/a`` lists within ``projects``).
    """
    segments = split_segments(raw_path)
    if len(segments) == 1 and list_prefix:
        head, _, _ = list_prefix.rpartition("/")
        extra = tuple(s for s in head.split("/") if s)
        if any(s in {".", ".."} or "\x00" in s for s in extra):
            raise BadRequest("prefix contains a '.' or '..' segment")
        segments = segments + extra
    return StoragePath(segments)


def destination_path(destination: str, *hosts: str) -> tuple[str, StoragePath]:
    """The raw path of a WebDAV ``Destination`` header and its storage path.

    An absolute URL must name one of this router's ``hosts`` (the ``Host`` the client used, or
    the public URL's host behind a proxy); the returned raw path is what the file server gets,
    so the header never points elsewhere.
    """
    parts = urlsplit(destination)
    allowed = {h.lower() for h in hosts if h}
    if (parts.scheme or parts.netloc) and (
        parts.scheme not in {"http", "https"} or parts.netloc.lower() not in allowed
    ):
        raise BadRequest("Destination names another server")
    if parts.query or parts.fragment:
        raise BadRequest("Destination has a query or fragment")
    return parts.path, dav_path(parts.path)


def is_write(method: str) -> bool:
    return method.upper() not in READ_METHODS


def dav_operations(method: str, headers: dict[str, str]) -> tuple[Operation, ...]:
    """The WLCG operations a WebDAV request needs on its own path (pure).

    Reads need ``read``. ``PUT`` with ``If-None-Match: *`` and ``MKCOL`` only create (they
    cannot overwrite); any other write may change existing data and needs ``modify``, which
    ``storage.modify`` grants and ``storage.create`` does not.
    """
    method = method.upper()
    if method in READ_METHODS:
        return ("read",)
    if method == "MKCOL" or (method == "PUT" and headers.get("if-none-match", "") == "*"):
        return ("create",)
    if method == "COPY":
        return ("read",)
    return ("modify",)


def destination_operation(method: str, headers: dict[str, str]) -> Operation:
    """What ``COPY``/``MOVE`` need at their ``Destination``: overwriting is a modification."""
    if headers.get("overwrite", "T").upper() == "F":
        return "create"
    return "modify"
