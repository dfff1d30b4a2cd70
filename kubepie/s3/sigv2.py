"""Legacy Signature Version 2 *presigned URLs* (query string auth), verified purely.

boto3's ``generate_presigned_url`` still produces these by default for ``us-east-1``
(``?AWSAccessKeyId=...&Signature=...&Expires=<unix time>``), so a server that refuses them
breaks the most common presigning client. Only the query form is accepted; SigV2
``Authorization`` headers are not (every current SDK signs requests with SigV4).

String to sign: ``METHOD\\nContent-MD5\\nContent-Type\\nExpires\\n`` + the sorted ``x-amz-*``
headers + the resource (the raw path as sent, plus the S3 sub-resources of the query with
decoded values), HMAC-SHA1 with the secret, base64. Compared in constant time.

``Expires`` is an absolute time, so a URL could otherwise stay valid for decades. It may lie
at most :data:`~kubepie.s3.sigv4.MAX_PRESIGN_EXPIRES` (7 days, SigV4's limit) after the
moment of the request: such a URL is refused with ``AccessDenied`` whatever its signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from kubepie.s3 import errors
from kubepie.s3.sigv4 import (
    MAX_PRESIGN_EXPIRES,
    UNSIGNED_PAYLOAD,
    HttpRequest,
    Verified,
    query_pairs,
)

#: Query parameters that are part of the signed resource (as botocore signs them).
SUB_RESOURCES = frozenset(
    {
        "acl", "cors", "delete", "lifecycle", "location", "logging", "notification",
        "partNumber", "policy", "requestPayment", "restore", "tagging", "torrent", "uploadId",
        "uploads", "versionId", "versioning", "versions", "website",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PresignedV2:
    access_key: str
    signature: str
    expires: int


def parse(request: HttpRequest) -> PresignedV2 | None:
    """The SigV2 presigned claims of ``request``, or ``None`` if it has none."""
    query = dict(query_pairs(request.raw_query))
    if "Signature" not in query or "AWSAccessKeyId" not in query:
        return None
    try:
        expires = int(query.get("Expires", ""))
    except ValueError as exc:
        raise errors.AccessDenied("Expires is not a Unix time") from exc
    return PresignedV2(query["AWSAccessKeyId"], query["Signature"], expires)


def string_to_sign(request: HttpRequest, expires: int) -> str:
    headers = request.headers
    amz = "".join(
        f"{name}:{headers[name].strip()}\n" for name in sorted(headers) if name.startswith("x-amz-")
    )
    subresources = sorted(
        (name, value) for name, value in query_pairs(request.raw_query) if name in SUB_RESOURCES
    )
    resource = request.raw_path or "/"
    if subresources:
        resource += "?" + "&".join(f"{n}={v}" if v else n for n, v in subresources)
    return "\n".join(
        (
            request.method.upper(),
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            str(expires),
            amz + resource,
        )
    )


def verify(request: HttpRequest, claims: PresignedV2, secret: str, now: datetime) -> Verified:
    if now.timestamp() > claims.expires:
        raise errors.AccessDenied("Request has expired")
    if claims.expires - now.timestamp() > MAX_PRESIGN_EXPIRES:
        raise errors.AccessDenied(
            f"Expires lies more than {MAX_PRESIGN_EXPIRES} seconds (7 days) in the future"
        )
    digest = hmac.new(
        secret.encode("utf-8"),
        string_to_sign(request, claims.expires).encode("utf-8"),
        hashlib.sha1,
    ).digest()
    expected = base64.b64encode(digest).decode("ascii")
    if not hmac.compare_digest(expected, claims.signature):
        raise errors.SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided."
        )
    return Verified(access_key=claims.access_key, payload_hash=UNSIGNED_PAYLOAD)
