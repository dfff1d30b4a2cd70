"""CSRF tokens for the web UI's forms (pure).

A token is an HMAC-SHA256 of the session cookie's value under a key of its own (derived from
the router's first credential encryption key with a label of its own), so it is per session:
it changes with every login, needs no server-side storage, and a page of another site can
neither read nor compute it. Every form carries it in the field :data:`CSRF_FIELD`; every
POST is checked with :func:`hmac.compare_digest` before anything else happens. The session
cookie is also ``SameSite=Lax``, so a cross-site POST does not even carry the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

#: The form field every POST carries.
CSRF_FIELD = "csrf_token"
_LABEL = b"kubepie.web.csrf-token.v1"


def derive_key(material: bytes) -> bytes:
    """The CSRF key for one configured encryption key (a label no other use shares)."""
    return hmac.new(material, _LABEL, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class CsrfGuard:
    """Makes and checks the per-session tokens."""

    key: bytes = field(repr=False)

    @classmethod
    def from_material(cls, material: bytes) -> CsrfGuard:
        if not material:
            raise ValueError("a key is needed")
        return cls(derive_key(material))

    def token(self, session: str) -> str:
        """The token of the session whose cookie value is ``session``."""
        mac = hmac.new(self.key, b"session:" + session.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def valid(self, session: str | None, token: str | None) -> bool:
        """Whether ``token`` is the token of ``session`` (constant-time comparison)."""
        if not session or not token:
            return False
        return hmac.compare_digest(self.token(session).encode(), token.encode())
