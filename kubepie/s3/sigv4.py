"""AWS Signature Version 4 verification for S3 requests (pure: no I/O, no clock of its own).

Verification runs in two steps so that the secret can be looked up asynchronously in between:

1. :func:`parse` reads the ``Authorization`` header or the presigned ``X-Amz-*`` query
   parameters into a :class:`SignedAuth` (or ``None`` for an anonymous request);
2. the caller looks up the secret for ``SignedAuth.credential.access_key`` and calls
   :func:`verify` with it and the current time, which answers a :class:`Verified`: the access key
   id, the declared payload hash and, for ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``
   bodies, a :class:`ChunkSignatureChain` that checks each chunk's signature against the
   previous one (the first against the seed signature of the headers).

What is checked: the canonical request (S3 flavour: the path is not normalised, each segment
is URI-encoded once), the credential scope (date equal to the request date, service ``s3``,
terminator ``aws4_request``), a 15-minute clock skew window, presigned expiry (at most 7 days;
past it, ``AccessDenied``), and that ``host`` and every ``x-amz-*`` header sent are signed.
Signatures are compared with :func:`hmac.compare_digest`. A hex ``x-amz-content-sha256`` is
only declared here; the body is checked against it while it streams (see
:mod:`kubepie.s3.chunked`). The region in the scope is accepted as given: the key derivation
binds it, and a client configured for another region is still the holder of the secret.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from kubepie.s3 import errors

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_PAYLOADS = frozenset(
    {STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER}
)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Largest allowed distance between the request time and the server clock.
MAX_SKEW = timedelta(minutes=15)
#: Longest validity of a presigned URL (seven days, as AWS allows).
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600

_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_AUTH_FIELD = re.compile(r"\s*(Credential|SignedHeaders|Signature)\s*=\s*([^,\s]*)\s*")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The parts of a request that SigV4 covers; ``headers`` keys are lower-case."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]


def headers_from_asgi(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-cased header map from ASGI header pairs; repeated headers are joined by ``,``."""
    merged: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        merged[key] = f"{merged[key]},{text}" if key in merged else text
    return merged


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True, slots=True)
class SignedAuth:
    """A request's signature claims, as parsed from the header or the presigned query."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    payload_hash: str
    presigned: bool = False
    expires: int = 0


@dataclass(slots=True)
class ChunkSignatureChain:
    """Verifies ``aws-chunked`` chunk signatures, each chained from the previous one."""

    signing_key: bytes
    amz_date: str
    scope: str
    previous: str
    _prefix: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._prefix = f"{self.amz_date}\n{self.scope}\n"

    def verify_chunk(self, signature: str, chunk_sha256: str) -> None:
        """Check one chunk (including the final empty one) given the hex SHA-256 of its data."""
        to_sign = (
            f"{ALGORITHM}-PAYLOAD\n{self._prefix}{self.previous}\n{EMPTY_SHA256}\n{chunk_sha256}"
        )
        self._check(to_sign, signature, "chunk")

    def verify_trailer(self, canonical_trailer: bytes, signature: str) -> None:
        """Check ``x-amz-trailer-signature`` over the trailer lines (``name:value\\n`` each)."""
        digest = hashlib.sha256(canonical_trailer).hexdigest()
        to_sign = f"{ALGORITHM}-TRAILER\n{self._prefix}{self.previous}\n{digest}"
        self._check(to_sign, signature, "trailer")

    def _check(self, to_sign: str, signature: str, what: str) -> None:
        expected = _hmac(self.signing_key, to_sign).hex()
        if not hmac.compare_digest(expected, signature.lower()):
            raise errors.SignatureDoesNotMatch(f"the {what} signature does not match")
        self.previous = expected


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified request: who signed it and how its body must be checked."""

    access_key: str
    payload_hash: str
    chunks: ChunkSignatureChain | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """The derived key ``HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), ...)``.

    Cached: a key is valid for a whole day and costs four HMACs to derive.
    """
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _uri_encode(text: str, safe: str = "") -> str:
    return quote(text, safe="-_.~" + safe)


def canonical_uri(raw_path: str) -> str:
    """S3's canonical URI: each raw segment decoded once and encoded the AWS way, not normalised."""
    if not raw_path:
        return "/"
    return "/".join(_uri_encode(unquote(part)) for part in raw_path.split("/"))


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Decoded ``(name, value)`` pairs of a raw query string, in order (``+`` stays ``+``)."""
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]], *, skip: str = "") -> str:
    encoded = sorted((_uri_encode(n), _uri_encode(v)) for n, v in pairs if n != skip)
    return "&".join(f"{n}={v}" for n, v in encoded)


def canonical_header_value(value: str) -> str:
    return _SPACES.sub(" ", value.strip())


def canonical_request(
    request: HttpRequest, signed_headers: Iterable[str], payload_hash: str, *, presigned: bool
) -> str:
    names = list(signed_headers)
    headers = "".join(
        f"{name}:{canonical_header_value(request.headers.get(name, ''))}\n" for name in names
    )
    query = canonical_query(
        query_pairs(request.raw_query), skip="X-Amz-Signature" if presigned else ""
    )
    return "\n".join(
        (
            request.method.upper(),
            canonical_uri(request.raw_path),
            query,
            headers,
            ";".join(names),
            payload_hash,
        )
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _parse_credential(text: str, error: type[errors.S3Error]) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or not parts[0] or parts[4] != "aws4_request":
        raise error(f"malformed credential {text!r}")
    if parts[3] != "s3":
        raise error(f"credential is for service {parts[3]!r}, not 's3'")
    if not re.fullmatch(r"\d{8}", parts[1]):
        raise error(f"credential date {parts[1]!r} is not YYYYMMDD")
    return Credential(parts[0], parts[1], parts[2], parts[3])


def _parse_signed_headers(text: str, error: type[errors.S3Error]) -> tuple[str, ...]:
    names = tuple(text.split(";"))
    if not text or any(not n or n != n.lower() for n in names):
        raise error(f"malformed SignedHeaders {text!r}")
    return names


def _parse_header(request: HttpRequest, header: str) -> SignedAuth:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise errors.AuthorizationHeaderMalformed(f"unsupported algorithm {algorithm!r}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        match = _AUTH_FIELD.fullmatch(part)
        if match is None:
            raise errors.AuthorizationHeaderMalformed(f"malformed field {part.strip()!r}")
        fields[match[1]] = match[2]
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise errors.AuthorizationHeaderMalformed(
            "Authorization needs Credential, SignedHeaders and Signature"
        )
    payload = request.headers.get("x-amz-content-sha256")
    if payload is None:
        raise errors.MissingSecurityHeader("x-amz-content-sha256 is required")
    return SignedAuth(
        credential=_parse_credential(fields["Credential"], errors.AuthorizationHeaderMalformed),
        signed_headers=_parse_signed_headers(
            fields["SignedHeaders"], errors.AuthorizationHeaderMalformed
        ),
        signature=fields["Signature"],
        amz_date=_request_date(request),
        payload_hash=payload,
    )


def _request_date(request: HttpRequest) -> str:
    amz_date = request.headers.get("x-amz-date")
    if amz_date is not None:
        return amz_date
    date = request.headers.get("date")
    if date is None:
        raise errors.AccessDenied("the request has neither x-amz-date nor Date")
    try:
        parsed = parsedate_to_datetime(date)
    except (TypeError, ValueError) as exc:
        raise errors.AccessDenied(f"unparseable Date {date!r}") from exc
    return parsed.astimezone(UTC).strftime(_AMZ_DATE)


def _parse_presigned(query: Mapping[str, str]) -> SignedAuth:
    error = errors.AuthorizationQueryParametersError
    required = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")
    missing = [name for name in (*required, "X-Amz-Signature") if name not in query]
    if missing:
        raise error(f"presigned URL lacks {', '.join(missing)}")
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise error(f"unsupported algorithm {query['X-Amz-Algorithm']!r}")
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError as exc:
        raise error("X-Amz-Expires is not a number") from exc
    if not 0 < expires <= MAX_PRESIGN_EXPIRES:
        raise error(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds")
    return SignedAuth(
        credential=_parse_credential(query["X-Amz-Credential"], error),
        signed_headers=_parse_signed_headers(query["X-Amz-SignedHeaders"], error),
        signature=query["X-Amz-Signature"],
        amz_date=query["X-Amz-Date"],
        payload_hash=query.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD),
        presigned=True,
        expires=expires,
    )


def parse(request: HttpRequest) -> SignedAuth | None:
    """The signature claims of ``request``, or ``None`` when it carries no signature."""
    header = request.headers.get("authorization")
    query = dict(query_pairs(request.raw_query))
    if header is not None:
        if "X-Amz-Algorithm" in query:
            raise errors.InvalidArgument("both an Authorization header and a presigned query")
        return _parse_header(request, header)
    if "X-Amz-Algorithm" in query:
        return _parse_presigned(query)
    return None


def _parse_amz_date(text: str) -> datetime:
    # By hand: strptime costs more than the rest of the verification together.
    if len(text) != 16 or text[8] != "T" or text[15] != "Z":
        raise errors.AccessDenied(f"malformed request date {text!r}")
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise errors.AccessDenied(f"malformed request date {text!r}") from exc


def _check_time(auth: SignedAuth, now: datetime) -> None:
    when = _parse_amz_date(auth.amz_date)
    if auth.credential.date != auth.amz_date[:8]:
        raise errors.SignatureDoesNotMatch("the credential date is not the request date")
    if auth.presigned:
        if when - now > MAX_SKEW:
            raise errors.AccessDenied("Request is not valid yet")
        if now > when + timedelta(seconds=auth.expires):
            raise errors.AccessDenied("Request has expired")
    elif abs(now - when) > MAX_SKEW:
        raise errors.RequestTimeTooSkewed(
            "The difference between the request time and the server's time is too large."
        )


def _check_signed_headers(request: HttpRequest, auth: SignedAuth) -> None:
    signed = set(auth.signed_headers)
    if "host" not in signed:
        raise errors.AccessDenied("the host header must be signed")
    unsigned = [
        name
        for name in request.headers
        if name.startswith("x-amz-") and name not in signed and not _ignorable(name, auth)
    ]
    if unsigned:
        raise errors.AccessDenied(f"headers not signed: {', '.join(sorted(unsigned))}")


def _ignorable(name: str, auth: SignedAuth) -> bool:
    # A presigned URL signs only what the presigner knew; clients add these afterwards.
    return auth.presigned or name in ("x-amz-content-sha256", "x-amz-date")


def verify(request: HttpRequest, auth: SignedAuth, secret: str, now: datetime) -> Verified:
    """Check ``auth`` for ``request`` with ``secret`` at time ``now``; raise an S3 error if bad."""
    _check_time(auth, now)
    _check_signed_headers(request, auth)
    payload = auth.payload_hash
    if not (
        payload in STREAMING_PAYLOADS or payload == UNSIGNED_PAYLOAD or _HEX64.fullmatch(payload)
    ):
        raise errors.InvalidArgument(f"x-amz-content-sha256 {payload!r} is not supported")
    if auth.presigned and payload in STREAMING_PAYLOADS:
        raise errors.InvalidRequest("a presigned URL cannot carry a streaming payload")
    cred = auth.credential
    key = signing_key(secret, cred.date, cred.region, cred.service)
    canonical = canonical_request(request, auth.signed_headers, payload, presigned=auth.presigned)
    expected = _hmac(key, string_to_sign(auth.amz_date, cred.scope, canonical)).hex()
    if not hmac.compare_digest(expected, auth.signature.lower()):
        raise errors.SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided."
        )
    chunks = None
    if payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        chunks = ChunkSignatureChain(key, auth.amz_date, cred.scope, expected)
    return Verified(access_key=cred.access_key, payload_hash=payload, chunks=chunks)
