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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from identity.scopes import Operation
from kubepie.fileserver.errors import PathRefused
from kubepie.fileserver.mounts import split_url_path
from kubepie.router.errors import BadRequest
from kubepie.s3.sources import COPY_SOURCE, object_segments, parse_copy_source

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


@dataclass(frozen=True, slots=True)
class Target:
    """One path a request touches and the WLCG operations it needs there.

    ``creates``: the request makes a name here that may already exist (``PUT``, ``MKCOL``, a
    ``COPY``/``MOVE`` destination, an S3 object write). It needs only ``create``; a caller who
    may create here but not modify is forwarded *create-only*, and the file server then creates
    exclusively, never replacing what is there (see :func:`kubepie.router.access.authorize`).
    """

    path: StoragePath
    operations: tuple[Operation, ...]
    creates: bool = False


def dav_operations(method: str, headers: Mapping[str, str]) -> tuple[Operation, ...]:
    """The WLCG operations a WebDAV request needs on its own path, for callers that forward
    without the create-only mark (the web UI's own requests): a write that may replace
    needs ``modify``; only ``PUT`` with ``If-None-Match: *`` (set by the caller itself, on
    the headers it forwards) and ``MKCOL`` are mere creations. Pure.
    """
    method = method.upper()
    if method in READ_METHODS:
        return ("read",)
    if method == "MKCOL" or (method == "PUT" and headers.get("if-none-match", "") == "*"):
        return ("create",)
    if method == "COPY":
        return ("read",)
    return ("modify",)


def dav_targets(
    method: str, path: StoragePath, headers: Mapping[str, str], hosts: Sequence[str]
) -> tuple[tuple[Target, ...], str | None]:
    """Every path a WebDAV request touches, and the raw path ``Destination`` is rewritten to.

    ``headers`` is the forwarded view (:meth:`kubepie.router.headers.RequestHeaders.view`).
    Reads need ``read``. ``PUT`` and ``MKCOL`` create (:class:`Target`): whether they may
    also replace is the principal's, not the request's, to say (WLCG ``storage.create``
    uploads with a plain ``PUT``). ``COPY`` reads its source, ``MOVE`` reads and removes it
    (``read`` and ``modify``); both create at their ``Destination``, which must name this
    server. Any other method may change or remove existing data and needs ``modify``. A
    ``Source`` header (an HTTP third-party pull) names a path nobody here checks: refused.
    Pure.
    """
    method = method.upper()
    if method in READ_METHODS:
        return (Target(path, ("read",)),), None
    if method in {"PUT", "MKCOL"}:
        return (Target(path, ("create",), creates=True),), None
    if method in {"COPY", "MOVE"}:
        if headers.get("source") is not None:
            raise BadRequest("third-party copy (a Source header) is not supported")
        destination = headers.get("destination")
        if not destination:
            raise BadRequest("COPY and MOVE need a Destination header")
        raw_dest, dest = destination_path(destination, *hosts)
        source: tuple[Operation, ...] = ("read",) if method == "COPY" else ("read", "modify")
        return (Target(path, source), Target(dest, ("create",), creates=True)), raw_dest
    return (Target(path, ("modify",)),), None


def is_delete_objects(method: str, on_object: bool, query: Mapping[str, str]) -> bool:
    """Whether an S3 request is DeleteObjects (``POST /bucket?delete``), whose keys are in
    its body."""
    return method.upper() == "POST" and not on_object and "delete" in query


def s3_targets(
    method: str,
    path: StoragePath,
    on_object: bool,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> tuple[Target, ...]:
    """The paths an S3 request touches by its URL and headers (DeleteObjects' keys, in its
    body, are added by the listener).

    ``path`` is the bucket and key (a listing's prefix included), ``on_object`` whether the
    URL names a key, ``query`` its decoded parameters, ``headers`` the forwarded view (joined
    as the S3 server joins them).
    ``GET``/``HEAD`` read. On an object, ``PUT`` (PutObject, CopyObject, UploadPart,
    UploadPartCopy) and ``POST`` (CreateMultipartUpload, CompleteMultipartUpload) create;
    ``DELETE`` and anything else modify. ``POST ?delete`` on a bucket needs nothing of the
    bucket itself: each key it names needs ``modify``. Other bucket writes modify. An
    ``x-amz-copy-source`` on any request must be readable. Pure.
    """
    method = method.upper()
    targets: list[Target] = []
    if method in {"GET", "HEAD"}:
        targets.append(Target(path, ("read",)))
    elif on_object and method in {"PUT", "POST"}:
        targets.append(Target(path, ("create",), creates=True))
    elif not is_delete_objects(method, on_object, query):
        targets.append(Target(path, ("modify",)))
    raw_source = headers.get(COPY_SOURCE)
    if raw_source is not None:
        source = StoragePath(object_segments(*parse_copy_source(raw_source)))
        targets.append(Target(source, ("read",)))
    return tuple(targets)
