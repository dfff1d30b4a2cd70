"""GET/HEAD preconditions and byte ranges (pure), as S3 evaluates them (RFC 7232, 7233).

Order: ``If-Match`` (412 when it fails), else ``If-Unmodified-Since`` (412); then
``If-None-Match`` (304 for GET/HEAD), else ``If-Modified-Since`` (304). A single
``bytes=`` range is honoured (``a-b``, ``a-``, ``-n``); a list of ranges is served whole, as S3
does; an unsatisfiable range is ``InvalidRange`` (416).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from kubepie.s3 import errors


class NotModified(Exception):
    """The client's copy is current: answer 304 with no body."""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(timestamp: float) -> str:
    """RFC 7231 date (``Sun, 06 Nov 1994 08:49:37 GMT``), without email.utils' overhead."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _parse_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _etag_matches(header: str, etag: str) -> bool:
    wanted = etag.strip('"')
    for candidate in header.split(","):
        token = candidate.strip().removeprefix("W/").strip('"')
        if token in ("*", wanted):
            return True
    return False


def check_preconditions(
    headers: Mapping[str, str], etag: str, mtime: float, *, prefix: str = "if-"
) -> None:
    """Raise ``PreconditionFailed`` or :class:`NotModified` as the conditional headers ask.

    ``prefix`` ``x-amz-copy-source-if-`` evaluates CopyObject's source conditions, where a
    failed "none-match"/"modified-since" is also a 412.
    """
    # HTTP dates have one-second resolution.
    seconds = int(mtime)
    match = headers.get(prefix + "match")
    unmodified = headers.get(prefix + "unmodified-since")
    if match is not None:
        if not _etag_matches(match, etag):
            raise errors.PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold"
            )
    elif unmodified is not None:
        when = _parse_date(unmodified)
        if when is not None and seconds > when:
            raise errors.PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold"
            )
    not_modified: Exception | None = None
    none_match = headers.get(prefix + "none-match")
    modified = headers.get(prefix + "modified-since")
    if none_match is not None:
        if _etag_matches(none_match, etag):
            not_modified = NotModified()
    elif modified is not None:
        when = _parse_date(modified)
        if when is not None and seconds <= when:
            not_modified = NotModified()
    if not_modified is not None:
        if prefix != "if-":
            raise errors.PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold"
            )
        raise not_modified


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_inclusive)`` of a single satisfiable range, ``None`` for the whole body."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                raise errors.InvalidRange("The requested range is not satisfiable")
            return (max(size - suffix, 0), size - 1) if size else _unsatisfiable()
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start > end and last:
        return None
    if start >= size:
        _unsatisfiable()
    return start, min(end, size - 1)


def _unsatisfiable() -> tuple[int, int]:
    raise errors.InvalidRange("The requested range is not satisfiable")
