"""A small SigV4 signer for requests boto3 will not make: chosen times, streaming chunks.

Built on the pure functions of :mod:`kubepie.s3.sigv4` (the verifier's own canonical request),
so a mistake here would show up as a refused *valid* request in the positive tests.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from kubepie.s3 import sigv4

REGION = "us-east-1"


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    method: str,
    host: str,
    path: str,
    access_key: str,
    secret: str,
    *,
    when: datetime | None = None,
    payload_hash: str = sigv4.EMPTY_SHA256,
    extra: dict[str, str] | None = None,
) -> tuple[dict[str, str], str, bytes]:
    """Headers of a header-signed request, its seed signature and the signing key."""
    when = when or datetime.now(UTC)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    headers = {
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_hash,
        **(extra or {}),
    }
    names = sorted(headers)
    request = sigv4.HttpRequest(method, path, "", headers)
    canonical = sigv4.canonical_request(request, names, payload_hash, presigned=False)
    scope = f"{date}/{REGION}/s3/aws4_request"
    key = sigv4.signing_key(secret, date, REGION)
    signature = _hmac_hex(key, sigv4.string_to_sign(amz_date, scope, canonical))
    headers["authorization"] = (
        f"{sigv4.ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers, signature, key


def aws_chunked(
    chunks: list[bytes], key: bytes, seed: str, amz_date: str, *, forge: int | None = None
) -> bytes:
    """An ``aws-chunked`` body with chained chunk signatures; ``forge`` breaks that chunk's."""
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    previous = seed
    out = bytearray()
    for index, data in enumerate([*chunks, b""]):
        to_sign = (
            f"{sigv4.ALGORITHM}-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n"
            f"{sigv4.EMPTY_SHA256}\n{hashlib.sha256(data).hexdigest()}"
        )
        signature = _hmac_hex(key, to_sign)
        previous = signature
        if forge == index:
            signature = "0" * 64
        out += f"{len(data):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n"
    return bytes(out)
