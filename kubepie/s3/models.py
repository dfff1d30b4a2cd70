"""Pure data passed between the S3 storage modules and the XML renderer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object (a file, or an empty directory shown as a ``key/`` folder marker)."""

    key: str
    size: int
    mtime: float
    etag: str
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListQuery:
    prefix: str = ""
    delimiter: str = ""
    marker: str = ""
    max_keys: int = 1000


@dataclass(frozen=True, slots=True)
class ListPage:
    """A page of a listing: objects and common prefixes, both in key order."""

    contents: tuple[ObjectInfo, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    #: The last key or common prefix of this page (the marker for the next one).
    last: str = ""


@dataclass(frozen=True, slots=True)
class PartInfo:
    number: int
    size: int
    mtime: float
    etag: str


@dataclass(frozen=True, slots=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: float
    content_type: str = "binary/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    key: str
    code: str = ""
    message: str = ""
