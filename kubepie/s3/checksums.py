"""Body digests an S3 request may declare, computed while the body streams (pure).

* ``Content-MD5``: base64 MD5 (RFC 1864); the MD5 is computed anyway for the ETag.
* ``x-amz-checksum-{crc32,crc32c,sha1,sha256}``: base64 of the big-endian digest, sent as a
  header or, with ``aws-chunked`` bodies, as a trailer named by ``x-amz-trailer``.
* ``x-amz-content-sha256`` as 64 hex digits: the SHA-256 of the (decoded) body.

:class:`BodyDigests` collects what a request asks for and :meth:`BodyDigests.check` raises the
S3 error a mismatch deserves. CRC32C uses ``google-crc32c`` (C, hardware-accelerated).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Mapping
from typing import Protocol

import google_crc32c

from kubepie.s3 import errors

#: The ``x-amz-checksum-*`` algorithms accepted, by lower-case name.
ALGORITHMS = ("crc32", "crc32c", "sha1", "sha256")


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._value = google_crc32c.extend(self._value, bytes(data))

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for an ``x-amz-checksum-*`` algorithm name (lower-case)."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm == "crc32c":
        return _Crc32c()
    if algorithm in ("sha1", "sha256"):
        return hashlib.new(algorithm)
    raise errors.InvalidRequest(f"unsupported checksum algorithm {algorithm!r}")


def checksum_value(algorithm: str, data: bytes) -> str:
    """The header value of ``algorithm`` over ``data`` (used for small bodies and tests)."""
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return base64.b64encode(hasher.digest()).decode("ascii")


def _decode_b64(value: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidDigest(f"{what} is not valid base64") from exc
    if len(raw) != size:
        raise errors.InvalidDigest(f"{what} has the wrong length")
    return raw


_DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "sha1": 20, "sha256": 32}


class BodyDigests:
    """The digests of one request body; feed every decoded byte to :meth:`update`."""

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        content_sha256: str | None = None,
        trailer_checksum: str | None = None,
        md5: bool = True,
    ) -> None:
        self._content_md5: bytes | None = None
        if "content-md5" in headers:
            self._content_md5 = _decode_b64(headers["content-md5"], 16, "Content-MD5")
        # The S3 ETag is an MD5 by definition; without ``md5`` it is only computed to check a
        # Content-MD5 the client sent.
        self.md5 = (
            hashlib.md5(usedforsecurity=False) if md5 or self._content_md5 is not None else None
        )
        self._sha256 = hashlib.sha256() if content_sha256 is not None else None
        self._content_sha256 = content_sha256
        self.algorithm: str | None = None
        self._expected: bytes | None = None
        for name in ALGORITHMS:
            header = f"x-amz-checksum-{name}"
            if header in headers:
                self.algorithm = name
                self._expected = _decode_b64(headers[header], _DIGEST_SIZES[name], header)
        if trailer_checksum is not None:
            name = trailer_checksum.lower().removeprefix("x-amz-checksum-")
            if name not in ALGORITHMS:
                raise errors.InvalidRequest(f"unsupported trailer {trailer_checksum!r}")
            self.algorithm = name
        self._checksum = new_hasher(self.algorithm) if self.algorithm else None
        self.checksum_value: str | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self.md5 is not None:
            self.md5.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        if self._checksum is not None:
            self._checksum.update(data)

    def check(self, trailers: Mapping[str, str] | None = None) -> None:
        """Raise ``BadDigest`` / ``XAmzContentSHA256Mismatch`` unless every digest matches."""
        if (
            self._content_md5 is not None
            and self.md5 is not None
            and self.md5.digest() != self._content_md5
        ):
            raise errors.BadDigest("The Content-MD5 you specified did not match what we received.")
        if self._sha256 is not None and self._sha256.hexdigest() != self._content_sha256:
            raise errors.XAmzContentSHA256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )
        if self._checksum is None or self.algorithm is None:
            return
        expected = self._expected
        if expected is None:
            header = f"x-amz-checksum-{self.algorithm}"
            value = (trailers or {}).get(header)
            if value is None:
                raise errors.InvalidRequest(f"the declared trailer {header} was not sent")
            expected = _decode_b64(value, _DIGEST_SIZES[self.algorithm], header)
        actual = self._checksum.digest()
        if actual != expected:
            raise errors.BadDigest(
                f"The {self.algorithm.upper()} you specified did not match the calculated checksum."
            )
        self.checksum_value = base64.b64encode(actual).decode("ascii")
