"""Multipart uploads through boto3: ETags, listings, abort, copy parts, refusals."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client
from mypy_boto3_s3.type_defs import CompletedPartTypeDef

from tests.kubepie.s3.conftest import S3Server

MIB = 1024 * 1024


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _staging(s3_server: S3Server) -> list[str]:
    staging = s3_server.home / f".kubepie-s3-uploads-{os.getuid()}"
    if not staging.exists():
        return []
    return sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))


def test_three_part_upload_has_the_md5_of_md5s_etag(s3: S3Client, s3_server: S3Server) -> None:
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
    upload = s3.create_multipart_upload(
        Bucket="home", Key="mp/big.bin", ContentType="video/x-test", Metadata={"k": "v"}
    )
    upload_id = upload["UploadId"]
    etags = []
    for number, data in enumerate(parts, start=1):
        result = s3.upload_part(
            Bucket="home", Key="mp/big.bin", UploadId=upload_id, PartNumber=number, Body=data
        )
        assert result["ETag"] == f'"{_md5(data).hex()}"'
        etags.append(result["ETag"])
    listed = s3.list_parts(Bucket="home", Key="mp/big.bin", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
        (1, 5 * MIB),
        (2, 5 * MIB),
        (3, 1234),
    ]
    uploads = s3.list_multipart_uploads(Bucket="home", Prefix="mp/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mp/big.bin", upload_id)]
    # The object does not exist before Complete.
    assert not (s3_server.home / "mp" / "big.bin").exists()

    done = s3.complete_multipart_upload(
        Bucket="home",
        Key="mp/big.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    expected = hashlib.md5(b"".join(_md5(p) for p in parts), usedforsecurity=False).hexdigest()
    assert done["ETag"] == f'"{expected}-3"'
    assert (s3_server.home / "mp" / "big.bin").read_bytes() == b"".join(parts)
    head = s3.head_object(Bucket="home", Key="mp/big.bin")
    assert head["ETag"] == done["ETag"]
    assert head["ContentType"] == "video/x-test"
    assert head["Metadata"] == {"k": "v"}
    assert _staging(s3_server) == []


def test_aborted_upload_leaves_nothing_behind(s3: S3Client, s3_server: S3Server) -> None:
    upload_id = s3.create_multipart_upload(Bucket="home", Key="mp/aborted.bin")["UploadId"]
    s3.upload_part(
        Bucket="home", Key="mp/aborted.bin", UploadId=upload_id, PartNumber=1, Body=b"x" * 1000
    )
    assert _staging(s3_server) != []
    s3.abort_multipart_upload(Bucket="home", Key="mp/aborted.bin", UploadId=upload_id)
    assert _staging(s3_server) == []
    assert not (s3_server.home / "mp" / "aborted.bin").exists()
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket="home", Key="mp/aborted.bin", UploadId=upload_id)
    assert exc.value.response["Error"]["Code"] == "NoSuchUpload"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="home").get("Contents", [])]
    assert not any(".kubepie" in key for key in listed)


def test_complete_refuses_bad_part_lists(s3: S3Client) -> None:
    key = "mp/refused.bin"
    upload_id = s3.create_multipart_upload(Bucket="home", Key=key)["UploadId"]
    small = s3.upload_part(Bucket="home", Key=key, UploadId=upload_id, PartNumber=1, Body=b"a")
    last = s3.upload_part(Bucket="home", Key=key, UploadId=upload_id, PartNumber=2, Body=b"b")
    cases: list[tuple[list[CompletedPartTypeDef], str]] = [
        ([{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}], "InvalidPart"),
        ([{"PartNumber": 2, "ETag": last["ETag"]}, {"PartNumber": 1, "ETag": small["ETag"]}],
         "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": small["ETag"]}, {"PartNumber": 2, "ETag": last["ETag"]}],
         "EntityTooSmall"),
    ]  # fmt: skip
    for parts, code in cases:
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket="home", Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        assert exc.value.response["Error"]["Code"] == code
    # A single (last) part may be small.
    s3.complete_multipart_upload(
        Bucket="home",
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": last["ETag"]}]},
    )
    assert s3.get_object(Bucket="home", Key=key)["Body"].read() == b"b"
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="home", Key=key, UploadId="f" * 32, PartNumber=1, Body=b"x")
    assert exc.value.response["Error"]["Code"] == "NoSuchUpload"


def test_upload_part_copy(s3: S3Client) -> None:
    source = os.urandom(6 * MIB)
    s3.put_object(Bucket="home", Key="mp/source.bin", Body=source)
    key = "mp/copied.bin"
    upload_id = s3.create_multipart_upload(Bucket="home", Key=key)["UploadId"]
    first = s3.upload_part_copy(
        Bucket="home",
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource="home/mp/source.bin",
        CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )["CopyPartResult"]["ETag"]
    second = s3.upload_part(Bucket="home", Key=key, UploadId=upload_id, PartNumber=2, Body=b"tail")[
        "ETag"
    ]
    assert first == f'"{_md5(source[: 5 * MIB]).hex()}"'
    s3.complete_multipart_upload(
        Bucket="home",
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": second}]
        },
    )
    assert s3.get_object(Bucket="home", Key=key)["Body"].read() == source[: 5 * MIB] + b"tail"


def test_boto3_managed_transfer_in_parallel_parts(
    s3: S3Client, s3_server: S3Server, tmp_path: Path
) -> None:
    """upload_file / download_file: concurrent UploadParts with CRC32s, ranged GETs."""
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(12 * MIB + 5))
    s3.upload_file(str(source), "home", "mp/transfer.bin", Config=config)
    assert (s3_server.home / "mp" / "transfer.bin").read_bytes() == source.read_bytes()
    assert s3.head_object(Bucket="home", Key="mp/transfer.bin")["ETag"].endswith('-3"')
    target = tmp_path / "back.bin"
    s3.download_file("home", "mp/transfer.bin", str(target), Config=config)
    assert target.read_bytes() == source.read_bytes()
