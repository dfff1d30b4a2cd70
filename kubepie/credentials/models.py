"""Pure data for app credentials, and the pure checks on what a credential may do.

A credential belongs to an :class:`Owner` (the token's ``iss`` and ``sub``, plus the username
at creation for display); the router re-resolves the owner's identity on every use, so the
username here is informative only. Secrets never appear in a ``repr``: the fields that hold
them are excluded from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kubepie.credentials.errors import CredentialScopeError, InvalidCredentialRequest

#: Longest accepted ``prefix``, in characters.
MAX_PREFIX_LENGTH = 1024
#: Longest accepted ``description``, in characters.
MAX_DESCRIPTION_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a credential belongs to: scoped by ``issuer`` and ``sub``, never by username."""

    issuer: str
    sub: str
    username: str

    def __post_init__(self) -> None:
        if not self.issuer or not self.sub or not self.username:
            raise InvalidCredentialRequest("owner needs an issuer, a sub and a username")


@dataclass(frozen=True, slots=True)
class Credential:
    """One app credential as listed: everything but the secret.

    Times are POSIX timestamps in seconds (UTC); ``expires_at`` ``None`` means it never
    expires; ``last_used_at`` is updated at most once per the store's throttle interval.
    ``prefix`` is the normalized ``mount/dir/...`` the credential is confined to (``""``: every
    mount of the owner).
    """

    id: str
    access_key_id: str
    owner: Owner
    description: str
    read_only: bool
    prefix: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A just-created credential with its secret: the only time the secret is shown."""

    credential: Credential
    secret_access_key: str = field(repr=False)

    @property
    def id(self) -> str:
        return self.credential.id

    @property
    def access_key_id(self) -> str:
        return self.credential.access_key_id


@dataclass(frozen=True, slots=True)
class ActiveCredential:
    """A credential found for authentication, with its plain secret (SigV4 needs it to verify).

    Hand the secret only to signature verification; never log or return it.
    """

    credential: Credential
    secret_access_key: str = field(repr=False)


def normalize_prefix(prefix: str) -> str:
    """``prefix`` as ``mount/dir/...`` without leading or trailing slashes; refuses unsafe ones.

    ``""`` and ``"/"`` mean no confinement. ``.``/``..`` segments, empty segments inside the
    path, backslashes, NUL and control characters are refused rather than cleaned up, so what
    the user typed is what is enforced.
    """
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise InvalidCredentialRequest(f"prefix is longer than {MAX_PREFIX_LENGTH} characters")
    if any(ord(ch) < 0x20 or ch in "\x7f\\" for ch in prefix):
        raise InvalidCredentialRequest("prefix contains a control character or a backslash")
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    segments = stripped.split("/")
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise InvalidCredentialRequest(f"prefix segment {segment!r} is not allowed")
    return "/".join(segments)


def check_description(description: str) -> str:
    """``description`` if it is short, printable text."""
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidCredentialRequest(
            f"description is longer than {MAX_DESCRIPTION_LENGTH} characters"
        )
    if not description.isprintable():
        raise InvalidCredentialRequest("description contains non-printable characters")
    return description


def within_prefix(prefix: str, segments: Sequence[str]) -> bool:
    """Whether the path ``segments`` (mount first, already decoded) lie inside ``prefix``.

    Matching is by whole segments: prefix ``home/projects`` covers ``home/projects`` and
    ``home/projects/a`` but not ``home/projects2``.
    """
    if not prefix:
        return True
    wanted = prefix.split("/")
    return len(segments) >= len(wanted) and list(segments[: len(wanted)]) == wanted


def check_access(credential: Credential, segments: Sequence[str], *, write: bool) -> None:
    """Refuse, with :class:`CredentialScopeError`, a request the credential does not allow.

    ``segments`` is the request path (mount first) as the file server will see it, after
    decoding and the file server's own checks; ``write`` is true for any method that changes
    data (PUT, DELETE, MKCOL, MOVE, COPY, PROPPATCH, LOCK, S3 writes). POSIX rights and WLCG
    scopes still apply on top: this only ever narrows access.
    """
    if write and credential.read_only:
        raise CredentialScopeError("read-only credential cannot write")
    if not within_prefix(credential.prefix, segments):
        raise CredentialScopeError("path is outside the credential's prefix")
