"""The objects an S3 request names besides its own key, parsed one way for everyone.

CopyObject and UploadPartCopy read ``x-amz-copy-source``; DeleteObjects names its keys in
the body (:func:`kubepie.s3.xml.parse_delete`). The file server resolves these names and the
router checks a credential's prefix and read-only flag on them: both call the functions here,
so the path the router checks is the path the file server opens. Pure.
"""

from __future__ import annotations

from urllib.parse import unquote

from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import check_segment
from kubepie.s3 import errors
from kubepie.s3.objects import key_segments

COPY_SOURCE = "x-amz-copy-source"


def parse_copy_source(raw: str) -> tuple[str, str]:
    """The bucket and key of an ``x-amz-copy-source`` value.

    ``bucket/key`` or ``/bucket/key``, percent-encoded, optionally followed by
    ``?versionId=...`` (there are no versions here: it is ignored).
    """
    source = unquote(raw.partition("?")[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise errors.InvalidArgument("x-amz-copy-source must be bucket/key")
    return bucket, key


def object_segments(bucket: str, key: str) -> tuple[str, ...]:
    """The storage path segments (bucket first) of ``key`` in ``bucket``; S3 errors for a
    bucket or key that no object can have (``..``, empty segments, reserved names)."""
    try:
        check_segment(bucket)
    except FileServerError as exc:
        raise errors.AccessDenied(str(exc), resource=bucket) from exc
    parts, _ = key_segments(key)
    return (bucket, *parts)
