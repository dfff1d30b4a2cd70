"""S3 XML documents: rendering responses and parsing the two request bodies (pure).

Rendering escapes every text node. With ``encoding-type=url`` the key-like fields (keys,
prefixes, markers, the delimiter) are percent-encoded as S3 does, so that keys holding
characters XML 1.0 cannot carry still list. Parsing refuses DTDs outright (no entity
expansion is ever attempted) and answers ``MalformedXML`` for anything unexpected.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

from kubepie.s3 import errors
from kubepie.s3.models import DeleteOutcome, ListPage, ObjectInfo, PartInfo, UploadInfo

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def iso_time(timestamp: float) -> str:
    """S3's timestamp format: ``2024-01-02T03:04:05.000Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Doc:
    def __init__(self, root: str, *, namespace: bool = True) -> None:
        self._root = root
        attrs = f' xmlns="{NAMESPACE}"' if namespace else ""
        self._parts = [_HEADER, f"<{root}{attrs}>"]

    def text(self, tag: str, value: object) -> _Doc:
        if isinstance(value, bool):
            value = "true" if value else "false"
        self._parts.append(f"<{tag}>{escape(str(value))}</{tag}>")
        return self

    def raw(self, text: str) -> _Doc:
        self._parts.append(escape(text))
        return self

    def open(self, tag: str) -> _Doc:
        self._parts.append(f"<{tag}>")
        return self

    def close(self, tag: str) -> _Doc:
        self._parts.append(f"</{tag}>")
        return self

    def render(self) -> bytes:
        return "".join((*self._parts, f"</{self._root}>")).encode("utf-8")


def _encoder(url: bool) -> type[str] | _UrlEncode:
    return _UrlEncode() if url else str


class _UrlEncode:
    def __call__(self, value: str) -> str:
        return quote(value, safe="/")


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    doc = _Doc("Error", namespace=False).text("Code", code).text("Message", message)
    if resource:
        doc.text("Resource", resource)
    return doc.text("RequestId", request_id).render()


def _owner(doc: _Doc, owner: str) -> None:
    doc.open("Owner").text("ID", owner).text("DisplayName", owner).close("Owner")


def list_buckets(names: Iterable[tuple[str, float]], owner: str) -> bytes:
    doc = _Doc("ListAllMyBucketsResult")
    _owner(doc, owner)
    doc.open("Buckets")
    for name, created in names:
        doc.open("Bucket").text("Name", name).text("CreationDate", iso_time(created))
        doc.close("Bucket")
    return doc.close("Buckets").render()


def location(region: str) -> bytes:
    # us-east-1 is answered as an empty constraint, as S3 does.
    doc = _Doc("LocationConstraint")
    if region != "us-east-1":
        doc.raw(region)
    return doc.render()


def _contents(doc: _Doc, item: ObjectInfo, enc: type[str] | _UrlEncode, owner: str) -> None:
    doc.open("Contents").text("Key", enc(item.key)).text("LastModified", iso_time(item.mtime))
    doc.text("ETag", item.etag).text("Size", item.size)
    if owner:
        _owner(doc, owner)
    doc.text("StorageClass", "STANDARD").close("Contents")


def _prefixes(doc: _Doc, prefixes: Sequence[str], enc: type[str] | _UrlEncode) -> None:
    for prefix in prefixes:
        doc.open("CommonPrefixes").text("Prefix", enc(prefix)).close("CommonPrefixes")


def list_objects_v2(
    bucket: str,
    page: ListPage,
    *,
    prefix: str,
    delimiter: str,
    max_keys: int,
    start_after: str,
    continuation_token: str | None,
    next_token: str | None,
    url_encode: bool,
    owner: str = "",
) -> bytes:
    enc = _encoder(url_encode)
    doc = _Doc("ListBucketResult").text("Name", bucket).text("Prefix", enc(prefix))
    if delimiter:
        doc.text("Delimiter", enc(delimiter))
    doc.text("MaxKeys", max_keys)
    doc.text("KeyCount", len(page.contents) + len(page.common_prefixes))
    doc.text("IsTruncated", page.is_truncated)
    if url_encode:
        doc.text("EncodingType", "url")
    if continuation_token is not None:
        doc.text("ContinuationToken", continuation_token)
    if next_token is not None:
        doc.text("NextContinuationToken", next_token)
    if start_after:
        doc.text("StartAfter", enc(start_after))
    for item in page.contents:
        _contents(doc, item, enc, owner)
    _prefixes(doc, page.common_prefixes, enc)
    return doc.render()


def list_objects_v1(
    bucket: str,
    page: ListPage,
    *,
    prefix: str,
    delimiter: str,
    marker: str,
    max_keys: int,
    url_encode: bool,
    owner: str,
) -> bytes:
    enc = _encoder(url_encode)
    doc = _Doc("ListBucketResult").text("Name", bucket).text("Prefix", enc(prefix))
    doc.text("Marker", enc(marker)).text("MaxKeys", max_keys)
    if delimiter:
        doc.text("Delimiter", enc(delimiter))
    doc.text("IsTruncated", page.is_truncated)
    if url_encode:
        doc.text("EncodingType", "url")
    if page.is_truncated:
        doc.text("NextMarker", enc(page.last))
    for item in page.contents:
        _contents(doc, item, enc, owner)
    _prefixes(doc, page.common_prefixes, enc)
    return doc.render()


def copy_result(tag: str, etag: str, mtime: float) -> bytes:
    """``CopyObjectResult`` or ``CopyPartResult``."""
    return _Doc(tag).text("LastModified", iso_time(mtime)).text("ETag", etag).render()


def delete_result(outcomes: Iterable[DeleteOutcome], quiet: bool) -> bytes:
    doc = _Doc("DeleteResult")
    for outcome in outcomes:
        if outcome.code:
            doc.open("Error").text("Key", outcome.key).text("Code", outcome.code)
            doc.text("Message", outcome.message).close("Error")
        elif not quiet:
            doc.open("Deleted").text("Key", outcome.key).close("Deleted")
    return doc.render()


def initiate_upload(bucket: str, key: str, upload_id: str) -> bytes:
    doc = _Doc("InitiateMultipartUploadResult")
    return doc.text("Bucket", bucket).text("Key", key).text("UploadId", upload_id).render()


def complete_upload(location: str, bucket: str, key: str, etag: str) -> bytes:
    doc = _Doc("CompleteMultipartUploadResult").text("Location", location)
    return doc.text("Bucket", bucket).text("Key", key).text("ETag", etag).render()


def list_parts(
    bucket: str,
    upload: UploadInfo,
    parts: Sequence[PartInfo],
    *,
    marker: int,
    max_parts: int,
    is_truncated: bool,
    owner: str,
) -> bytes:
    doc = _Doc("ListPartsResult").text("Bucket", bucket).text("Key", upload.key)
    doc.text("UploadId", upload.upload_id)
    doc.open("Initiator").text("ID", owner).text("DisplayName", owner).close("Initiator")
    _owner(doc, owner)
    doc.text("StorageClass", "STANDARD").text("PartNumberMarker", marker)
    if parts:
        doc.text("NextPartNumberMarker", parts[-1].number)
    doc.text("MaxParts", max_parts).text("IsTruncated", is_truncated)
    for part in parts:
        doc.open("Part").text("PartNumber", part.number)
        doc.text("LastModified", iso_time(part.mtime)).text("ETag", part.etag)
        doc.text("Size", part.size).close("Part")
    return doc.render()


def list_uploads(
    bucket: str,
    uploads: Sequence[UploadInfo],
    *,
    prefix: str,
    max_uploads: int,
    is_truncated: bool,
    owner: str,
) -> bytes:
    doc = _Doc("ListMultipartUploadsResult").text("Bucket", bucket)
    doc.text("KeyMarker", "").text("UploadIdMarker", "")
    if uploads:
        doc.text("NextKeyMarker", uploads[-1].key)
        doc.text("NextUploadIdMarker", uploads[-1].upload_id)
    doc.text("Prefix", prefix).text("MaxUploads", max_uploads).text("IsTruncated", is_truncated)
    for upload in uploads:
        doc.open("Upload").text("Key", upload.key).text("UploadId", upload.upload_id)
        doc.open("Initiator").text("ID", owner).text("DisplayName", owner).close("Initiator")
        _owner(doc, owner)
        doc.text("StorageClass", "STANDARD").text("Initiated", iso_time(upload.initiated))
        doc.close("Upload")
    return doc.render()


# Parsing ----------------------------------------------------------------------------------


def _parse(body: bytes) -> ET.Element:
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise errors.MalformedXML("DTDs are not accepted")
    try:
        return ET.fromstring(body)  # noqa: S314 - DTDs refused above, so no entity expansion
    except ET.ParseError as exc:
        raise errors.MalformedXML("The XML you provided was not well-formed") from exc


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child_text(element: ET.Element, name: str) -> str | None:
    found = _children(element, name)
    return (found[0].text or "") if found else None


def parse_delete(body: bytes, limit: int = 1000) -> tuple[list[str], bool]:
    """Keys and the ``Quiet`` flag of a ``DeleteObjects`` request."""
    root = _parse(body)
    if _local(root.tag) != "Delete":
        raise errors.MalformedXML("expected a Delete document")
    keys: list[str] = []
    for obj in _children(root, "Object"):
        key = _child_text(obj, "Key")
        if key is None:
            raise errors.MalformedXML("an Object without a Key")
        keys.append(key)
    if not keys or len(keys) > limit:
        raise errors.MalformedXML(f"a Delete request names 1 to {limit} keys")
    quiet = (_child_text(root, "Quiet") or "").strip().lower() == "true"
    return keys, quiet


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """``(part number, etag)`` pairs of a ``CompleteMultipartUpload`` request, in order."""
    root = _parse(body)
    if _local(root.tag) != "CompleteMultipartUpload":
        raise errors.MalformedXML("expected a CompleteMultipartUpload document")
    parts: list[tuple[int, str]] = []
    for part in _children(root, "Part"):
        number = _child_text(part, "PartNumber")
        etag = _child_text(part, "ETag")
        if number is None or etag is None:
            raise errors.MalformedXML("a Part needs PartNumber and ETag")
        try:
            parts.append((int(number), etag.strip()))
        except ValueError as exc:
            raise errors.MalformedXML("PartNumber is not a number") from exc
    if not parts:
        raise errors.MalformedXML("no parts given")
    return parts
