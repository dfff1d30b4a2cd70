"""ListObjectsV2 and ListObjects over a real tree: order, prefixes, delimiters, pagination."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from kubepie.fileserver.mounts import Mount
from kubepie.s3.listing import list_page
from kubepie.s3.models import ListQuery
from tests.kubepie.s3.conftest import S3Server

KEYS = sorted(
    [f"list/photos/2024/img{i:03d}.jpg" for i in range(150)]
    + [f"list/photos/2025/img{i:03d}.jpg" for i in range(60)]
    + [f"list/docs/d{i:02d}.txt" for i in range(40)]
    + [f"list/top{i}.txt" for i in range(5)]
    + ["list/a-b", "list/a/c", "list/a0", "list/z"]
)


@pytest.fixture(scope="module")
def tree(s3_server: S3Server) -> Path:
    base = s3_server.home
    for key in KEYS:
        path = base / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode())
    (base / "list" / "empty-dir").mkdir()
    (base / "list" / ".kubepie-s3-put-0123").write_bytes(b"in flight")
    (base / "list" / ".top0.txt.kubepie-upload-4567").write_bytes(b"WebDAV upload in flight")
    return base


def _all_keys(s3: S3Client, **kwargs: object) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="home", **kwargs):  # type: ignore[arg-type]
        pages += 1
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return keys, prefixes, pages


def test_full_listing_is_in_s3_order_across_pages(s3: S3Client, tree: Path) -> None:
    keys, prefixes, pages = _all_keys(s3, Prefix="list/", PaginationConfig={"PageSize": 37})
    expected = sorted([*KEYS, "list/empty-dir/"])
    assert keys == expected
    assert prefixes == []
    assert pages == -(-len(expected) // 37)


def test_delimiter_listing_with_pagination(s3: S3Client, tree: Path) -> None:
    keys, prefixes, _ = _all_keys(
        s3, Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": 3}
    )
    assert prefixes == ["list/a/", "list/docs/", "list/empty-dir/", "list/photos/"]
    assert keys == ["list/a-b", "list/a0", *[f"list/top{i}.txt" for i in range(5)], "list/z"]
    keys, prefixes, pages = _all_keys(
        s3, Prefix="list/photos/", Delimiter="/", PaginationConfig={"PageSize": 1}
    )
    assert (keys, prefixes, pages) == ([], ["list/photos/2024/", "list/photos/2025/"], 2)


def test_prefix_inside_a_directory_and_start_after(s3: S3Client, tree: Path) -> None:
    page = s3.list_objects_v2(Bucket="home", Prefix="list/photos/2025/img05")
    assert [o["Key"] for o in page["Contents"]] == [
        f"list/photos/2025/img{i:03d}.jpg" for i in range(50, 60)
    ]
    page = s3.list_objects_v2(
        Bucket="home", Prefix="list/docs/", StartAfter="list/docs/d37.txt", MaxKeys=10
    )
    assert [o["Key"] for o in page["Contents"]] == ["list/docs/d38.txt", "list/docs/d39.txt"]
    assert page["IsTruncated"] is False
    entry = page["Contents"][0]
    assert entry["Size"] == len(b"list/docs/d38.txt")
    assert entry["ETag"].endswith('-1"')  # written behind S3's back: derived, not an MD5
    assert s3.list_objects_v2(Bucket="home", Prefix="nothing/here/")["KeyCount"] == 0


def test_list_objects_v1_with_marker(s3: S3Client, tree: Path) -> None:
    keys: list[str] = []
    marker = ""
    while True:
        page = s3.list_objects(Bucket="home", Prefix="list/docs/", Marker=marker, MaxKeys=15)
        keys += [o["Key"] for o in page["Contents"]]
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker") or keys[-1]
    assert keys == [f"list/docs/d{i:02d}.txt" for i in range(40)]
    page = s3.list_objects(Bucket="home", Prefix="list/", Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]][:2] == ["list/a/", "list/docs/"]


def test_keys_that_need_url_encoding(s3: S3Client) -> None:
    names = ["enc/space name.txt", "enc/plus+sign", "enc/ümlaut€", "enc/amp&lt.txt", "enc/ctl\x01"]
    for key in names:
        s3.put_object(Bucket="home", Key=key, Body=key.encode())
    # boto3 asks for encoding-type=url and decodes the answer.
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="home", Prefix="enc/")["Contents"]]
    assert listed == sorted(names)
    for key in names:
        assert s3.get_object(Bucket="home", Key=key)["Body"].read() == key.encode()


def test_pure_listing_uses_a_generic_delimiter(tmp_path: Path) -> None:
    for name in ("x-1", "x-2", "y-1", "z"):
        (tmp_path / name).write_text(name)
    page = list_page(Mount("m", tmp_path), ListQuery(delimiter="-", max_keys=2))
    assert (page.common_prefixes, [c.key for c in page.contents]) == (("x-", "y-"), [])
    assert page.is_truncated
    rest = list_page(Mount("m", tmp_path), ListQuery(delimiter="-", marker=page.last))
    assert [c.key for c in rest.contents] == ["z"]
    assert not rest.is_truncated
