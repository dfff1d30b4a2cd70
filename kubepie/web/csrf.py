"""CSRF tokens for the web UI's forms (pure).

A token is an HMAC-SHA256 of the session cookie's value under a key of its own (derived from
the router's first credential encryption key with a label of its own), so it is per session:
it changes with every login, needs no server-side storage, and a page of another site can
neither read nor compute it. Every form carries it in the field :data:`CSRF_FIELD`; every
POST is checked with :func:`hmac.compare_digest` before anything else happens. The session
cookie is also ``SameSite=Lax``, so a cross-site POST does not even carry the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kubepie.router.origins import CsrfTokens

#: The form field every POST carries.
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class CsrfGuard(CsrfTokens):
    """Makes and checks the forms' per-session tokens (the API's mechanism, a key of its own)."""

    LABEL: ClassVar[bytes] = b"kubepie.web.csrf-token.v1"
    PURPOSE: ClassVar[bytes] = b"session:"
