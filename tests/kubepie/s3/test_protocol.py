"""The pure protocol pieces: XML documents, preconditions and ranges, error mapping."""

from __future__ import annotations

import errno
import xml.etree.ElementTree as ET

import pytest

from kubepie.s3 import errors, xml
from kubepie.s3.conditions import NotModified, check_preconditions, http_date, parse_range
from kubepie.s3.models import ListPage, ObjectInfo

NS = {"s3": xml.NAMESPACE}


def test_error_document_escapes_text() -> None:
    body = xml.error("NoSuchKey", "no <such> key & more", "/home/a&b", "RID")
    root = ET.fromstring(body)  # noqa: S314 - our own output
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message") == "no <such> key & more"
    assert root.findtext("Resource") == "/home/a&b"


def test_list_v2_document_url_encodes_keys() -> None:
    page = ListPage((ObjectInfo("dir/a b+c\x01", 3, 0.0, '"etag"'),), ("dir/sub/",), True, "x")
    body = xml.list_objects_v2(
        "home",
        page,
        prefix="dir/",
        delimiter="/",
        max_keys=2,
        start_after="",
        continuation_token=None,
        next_token="tok",
        url_encode=True,
    )
    root = ET.fromstring(body)  # noqa: S314 - our own output
    assert root.findtext("s3:Contents/s3:Key", namespaces=NS) == "dir/a%20b%2Bc%01"
    assert root.findtext("s3:Contents/s3:LastModified", namespaces=NS) == "1970-01-01T00:00:00.000Z"
    assert root.findtext("s3:KeyCount", namespaces=NS) == "2"
    assert root.findtext("s3:IsTruncated", namespaces=NS) == "true"
    assert root.findtext("s3:NextContinuationToken", namespaces=NS) == "tok"


def test_parsing_refuses_dtds_and_garbage() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Delete>&a;</Delete>'
    for body in (bomb, b"<Delete><Object>", b"<Other/>"):
        with pytest.raises(errors.MalformedXML):
            xml.parse_delete(body)
    keys, quiet = xml.parse_delete(
        b"<Delete xmlns='http://s3.amazonaws.com/doc/2006-03-01/'><Quiet>true</Quiet>"
        b"<Object><Key>a</Key></Object><Object><Key>b/c</Key></Object></Delete>"
    )
    assert (keys, quiet) == (["a", "b/c"], True)
    parts = xml.parse_complete(
        b'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"e1"</ETag></Part>'
        b"</CompleteMultipartUpload>"
    )
    assert parts == [(1, '"e1"')]


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=2-", 10, (2, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=5-100", 10, (5, 9)),
        ("bytes=0-1,4-5", 10, None),
        ("items=0-1", 10, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


def test_unsatisfiable_ranges() -> None:
    for header, size in (("bytes=10-", 10), ("bytes=-5", 0), ("bytes=-0", 10)):
        with pytest.raises(errors.InvalidRange):
            parse_range(header, size)


def test_preconditions_order() -> None:
    etag, mtime = '"abc"', 1_000_000_000.0
    check_preconditions(
        {"if-match": '"abc"', "if-unmodified-since": "Sat, 01 Jan 2000 00:00:00 GMT"}, etag, mtime
    )
    with pytest.raises(errors.PreconditionFailed):
        check_preconditions({"if-match": '"other"'}, etag, mtime)
    with pytest.raises(NotModified):
        check_preconditions({"if-none-match": 'W/"abc", "x"'}, etag, mtime)
    with pytest.raises(errors.PreconditionFailed):
        check_preconditions(
            {"x-amz-copy-source-if-none-match": '"abc"'},
            etag,
            mtime,
            prefix="x-amz-copy-source-if-",
        )


@pytest.mark.parametrize(
    ("code", "error", "status"),
    [
        (errno.EACCES, errors.AccessDenied, 403),
        (errno.ENOENT, errors.NoSuchKey, 404),
        (errno.ENOSPC, errors.InsufficientCapacity, 507),
        (errno.EDQUOT, errors.InsufficientCapacity, 507),
        (errno.EIO, errors.S3Error, 500),
    ],
)
def test_posix_errors_map_to_s3_codes(code: int, error: type[errors.S3Error], status: int) -> None:
    mapped = errors.from_oserror(OSError(code, "x"), "/home/k")
    assert type(mapped) is error
    assert mapped.status == status


def test_http_date_matches_email_utils() -> None:
    from email.utils import formatdate

    for timestamp in (0.0, 951782400.5, 1_700_000_000.0, 4_102_444_799.0):
        assert http_date(timestamp) == formatdate(timestamp, usegmt=True)
