"""Who may call the S3 API: the :class:`S3Authenticator` plug point and its two implementations.

* :class:`SigV4Authenticator` verifies AWS Signature Version 4 itself, with an asynchronous
  key lookup (access key id → secret); it also accepts SigV2 *presigned URLs*, which boto3
  still generates by default (:mod:`kubepie.s3.sigv2`). Standalone mode uses
  :class:`StaticKey`, one key pair (``KUBEPIE_ACCESS_KEY`` / ``KUBEPIE_SECRET_KEY``).
* :class:`TrustedFrontAuthenticator` is for a file server behind the router: the router has
  already verified the signature, so only the per-server secret header
  ``X-KubePie-Server-Secret`` is checked (constant time). ``aws-chunked`` bodies are still
  decoded, but their chunk signatures are not verified again; a hex ``x-amz-content-sha256``
  is still checked against the body (the router does not read bodies).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from kubepie.s3 import errors, sigv2, sigv4

#: Header carrying the per-server secret from the router to the file server.
SERVER_SECRET_HEADER = "x-kubepie-server-secret"  # noqa: S105 - a header name

SecretLookup = Callable[[str], Awaitable[str | None]]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class S3Authenticator(Protocol):
    async def authenticate(self, request: sigv4.HttpRequest) -> sigv4.Verified:
        """The verified caller, or an :class:`~kubepie.s3.errors.S3Error` (403/400)."""
        ...


@dataclass(frozen=True, slots=True, repr=False)
class StaticKey:
    """A single access key pair, as a :data:`SecretLookup`. The secret is never in repr."""

    access_key: str
    secret: str

    async def __call__(self, access_key: str) -> str | None:
        if hmac.compare_digest(access_key.encode(), self.access_key.encode()):
            return self.secret
        return None

    def __repr__(self) -> str:
        return f"StaticKey(access_key={self.access_key!r})"


class SigV4Authenticator:
    def __init__(self, lookup: SecretLookup, clock: Clock = utc_now) -> None:
        self._lookup = lookup
        self._clock = clock

    async def authenticate(self, request: sigv4.HttpRequest) -> sigv4.Verified:
        auth = sigv4.parse(request)
        if auth is not None:
            secret = await self._secret(auth.credential.access_key)
            return sigv4.verify(request, auth, secret, self._clock())
        legacy = sigv2.parse(request)
        if legacy is not None:
            secret = await self._secret(legacy.access_key)
            return sigv2.verify(request, legacy, secret, self._clock())
        raise errors.AccessDenied("Anonymous access is not allowed")

    async def _secret(self, access_key: str) -> str:
        secret = await self._lookup(access_key)
        if secret is None:
            raise errors.InvalidAccessKeyId(
                "The AWS Access Key Id you provided does not exist in our records."
            )
        return secret


class TrustedFrontAuthenticator:
    def __init__(self, server_secret: str) -> None:
        if not server_secret:
            raise ValueError("the per-server secret must not be empty")
        self._secret = server_secret.encode()

    async def authenticate(self, request: sigv4.HttpRequest) -> sigv4.Verified:
        given = request.headers.get(SERVER_SECRET_HEADER, "").encode("latin-1")
        if not hmac.compare_digest(given, self._secret):
            raise errors.AccessDenied("this server only answers its router")
        payload = request.headers.get("x-amz-content-sha256", sigv4.UNSIGNED_PAYLOAD)
        return sigv4.Verified(access_key="", payload_hash=payload, chunks=None)
