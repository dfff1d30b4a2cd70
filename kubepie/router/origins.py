"""Who sent a browser's request: refusing what another site makes a browser send.

A browser attaches the ``SameSite=Lax`` session cookie to requests from every page of the same
*site*, and that includes other ports of this host (the S3 listener, which serves user content)
and, for top-level navigations, any site at all; it also replays HTTP Basic credentials it has
cached for this origin. So every state-changing request that may carry such an ambient
credential is checked here:

* :func:`foreign_reason`: an ``Origin`` header other than the public URL's origin (``null``
  included: a sandboxed document), or ``Sec-Fetch-Site: cross-site`` / ``same-site``, marks a
  request made by another origin's page; it is refused, whatever authenticated it.
* A cookie-authenticated write to the JSON API must also *prove* it is ours: a same-origin
  ``Origin`` header (browsers send one with every POST, PUT, PATCH, DELETE) or the session's
  CSRF token in :data:`CSRF_HEADER` (:class:`CsrfTokens`; ``GET /api/v1/whoami`` tells a
  logged-in page its token). A request with neither is refused too (fail closed).
* :class:`SameOriginWrites` applies the first rule to ``/dav``, where a browser may hold cached
  Basic credentials.

Pure except for the ASGI wrapper; constant-time comparison for tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from kubepie.router.accounting import RequestRecord
from kubepie.router.context import RouterContext
from kubepie.router.errors import Forbidden
from kubepie.router.proxy import Transfer
from kubepie.router.responses import close_if_body_announced, send_error

#: Methods that change nothing (RFC 9110 §9.2.1) and that WebDAV clients read with.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE"})
#: Header a cookie-authenticated API write may carry its CSRF token in.
CSRF_HEADER = "x-csrf-token"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL, lower-case, default port left out (pure);
    ``""`` for anything that is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_unsafe(method: str) -> bool:
    return method.upper() not in SAFE_METHODS


def foreign_reason(headers: Mapping[str, str], public_origin: str) -> str | None:
    """Why the request comes from another origin's page, or ``None`` (pure; lower-case names).

    A request without ``Origin`` and ``Sec-Fetch-Site`` (a command-line client, an older
    browser's navigation) is not foreign by this test alone.
    """
    origin = headers.get("origin")
    if origin is not None and origin_of(origin) != public_origin:
        shown = origin[:100] if origin_of(origin) or origin == "null" else "an invalid origin"
        return f"this request comes from a page of another origin ({shown})"
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"this request comes from a page of another site (Sec-Fetch-Site: {site})"
    return None


def refuse_foreign(method: str, headers: Mapping[str, str], public_origin: str) -> None:
    """Raise 403 for a state-changing request made by another origin's page."""
    if is_unsafe(method):
        reason = foreign_reason(headers, public_origin)
        if reason is not None:
            raise Forbidden(f"{reason}: refused, it could act with your login")


@dataclass(frozen=True, slots=True)
class CsrfTokens:
    """Per-session CSRF tokens: an HMAC of the session cookie's value under a key derived
    from a configured encryption key with :attr:`LABEL`, so a token changes with every login
    and needs no storage. This class makes the JSON API's; the web UI's forms use a subclass
    with a label and purpose of their own (:class:`kubepie.web.csrf.CsrfGuard`)."""

    key: bytes = field(repr=False)
    #: Derives this kind's key from the configured key material (no other use shares it).
    LABEL: ClassVar[bytes] = b"kubepie.router.api-csrf-token.v1"
    #: Prefixed to the cookie value before the MAC.
    PURPOSE: ClassVar[bytes] = b"api:"

    @classmethod
    def from_material(cls, material: bytes) -> Self:
        if not material:
            raise ValueError("a key is needed")
        return cls(hmac.new(material, cls.LABEL, hashlib.sha256).digest())

    def token(self, session_cookie: str) -> str:
        """The token of the session whose cookie value is ``session_cookie``."""
        mac = hmac.new(self.key, self.PURPOSE + session_cookie.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def valid(self, session_cookie: str | None, token: str | None) -> bool:
        """Whether ``token`` is the token of ``session_cookie`` (constant-time comparison)."""
        if not session_cookie or not token:
            return False
        return hmac.compare_digest(self.token(session_cookie).encode(), token.encode())


def check_session_write(
    headers: Mapping[str, str],
    public_origin: str,
    tokens: CsrfTokens,
    session_cookie: str | None,
) -> None:
    """Raise 403 unless a cookie-authenticated write shows it comes from our own pages: a
    same-origin ``Origin`` header or the session's CSRF token (see the module docstring)."""
    reason = foreign_reason(headers, public_origin)
    if reason is not None:
        raise Forbidden(f"{reason}: refused, it could act with your login")
    if tokens.valid(session_cookie, headers.get(CSRF_HEADER)):
        return
    origin = headers.get("origin")
    if origin is not None and origin_of(origin) == public_origin:
        return
    raise Forbidden(
        "a request authenticated by the session cookie must come from this site's pages: "
        f"send an Origin header or the {CSRF_HEADER} header (its value: csrf_token in "
        "GET /api/v1/whoami)"
    )


class SameOriginWrites:
    """ASGI wrapper: a state-changing request from another origin's page is answered 403
    (plain text) before ``app`` sees it, and accounted on ``listener`` like any refusal there;
    everything else passes untouched."""

    def __init__(self, app: ASGIApp, public_origin: str, ctx: RouterContext, listener: str) -> None:
        self.app = app
        self.public_origin = public_origin
        self.ctx = ctx
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_unsafe(scope["method"]):
            headers: dict[str, str] = {}
            for name, value in scope["headers"]:
                headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            if foreign_reason(headers, self.public_origin) is not None:

                async def refuse(record: RequestRecord, transfer: Transfer) -> None:
                    refuse_foreign(scope["method"], headers, self.public_origin)

                async def answer(exc: Exception) -> int:
                    close = close_if_body_announced(scope)
                    return await send_error(send, exc, json_body=False, extra_headers=close)

                await self.ctx.accounted(self.listener, scope, refuse, answer)
                return
        await self.app(scope, receive, send)
