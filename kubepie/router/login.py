"""Browser login: OpenID Connect authorization code flow with PKCE, state and nonce.

``/login`` puts ``state``, ``nonce`` and the PKCE verifier in a short-lived sealed cookie and
sends the browser to the issuer (URL and PKCE challenge built with authlib's protocol helpers);
``/callback`` checks ``state`` in constant time, redeems the code with the verifier at the
token endpoint (client secret in HTTP Basic), validates the ID token (signature, ``iss``,
``aud`` = our client id, ``exp``) and its ``nonce``, maps it to an identity (a user who cannot
be mapped gets no session), starts a server-side session (:mod:`kubepie.router.sessions`)
and sets the session cookie: sealed, HttpOnly, SameSite=Lax, Secure when the public URL is
https. The cookie holds the identity claims and the session id. ``/logout`` ends the session
server-side (a copy of the cookie opens nothing afterwards), drops the cookie and, when the
issuer has an ``end_session_endpoint``, logs out there too; a logout asked for by another
site's page is refused (:mod:`kubepie.router.origins`), so a link cannot log anyone out.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from identity.errors import DirectoryUnavailableError
from identity.models import ValidatedToken
from kubepie.router.authn import SESSION_COOKIE, TokenCheck, session_id
from kubepie.router.errors import Forbidden, LoginFailed
from kubepie.router.identities import IdentityResolver
from kubepie.router.origins import foreign_reason, origin_of
from kubepie.router.session import CookieSealer
from kubepie.router.sessions import SessionStore

LOGIN_COOKIE = "kubepie_login"
#: Seconds a login may take at the issuer (the flow cookie's life).
LOGIN_LIFETIME_S = 600.0
#: Seconds a browser session lasts: a working day; the identity is re-mapped on every request.
SESSION_LIFETIME_S = 8 * 3600.0


@dataclass(frozen=True, slots=True)
class LoginSettings:
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    public_url: str
    #: Claims copied into the session (those the identity mapping reads).
    session_claims: tuple[str, ...]

    @property
    def redirect_uri(self) -> str:
        return self.public_url.rstrip("/") + "/callback"

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def origin(self) -> str:
        return origin_of(self.public_url)


def safe_next(value: str | None) -> str:
    """A local path to return to after login; anything else is ``/`` (no open redirect).

    Browsers drop tabs and newlines from a URL and read ``\\`` as ``/``, so a value with a
    control character, whitespace or a backslash is refused, not cleaned."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return "/"
    return value


class Login:
    def __init__(
        self,
        settings: LoginSettings,
        http: httpx.AsyncClient,
        id_tokens: TokenCheck,
        resolver: IdentityResolver,
        sealer: CookieSealer,
        sessions: SessionStore,
    ) -> None:
        self.settings = settings
        self._http = http
        self._id_tokens = id_tokens
        self._resolver = resolver
        self._sealer = sealer
        self._sessions = sessions
        self._metadata: dict[str, Any] | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login, methods=["GET"]),
            Route("/callback", self.callback, methods=["GET"]),
            Route("/logout", self.logout, methods=["GET", "POST"]),
        ]

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                response = await self._http.get(url)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise DirectoryUnavailableError("the issuer's discovery document") from exc
            if not isinstance(document, dict) or document.get("issuer") != self.settings.issuer:
                raise DirectoryUnavailableError("the discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint"):
                if not isinstance(document.get(key), str):
                    raise DirectoryUnavailableError(f"the discovery document has no {key}")
            self._metadata = document
        return self._metadata

    def _cookie(self, response: Response, name: str, value: str, max_age: float) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(max_age),
            path="/",
            secure=self.settings.secure,
            httponly=True,
            samesite="lax",
        )

    async def login(self, request: Request) -> Response:
        meta = await self.metadata()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        uri = prepare_grant_uri(
            meta["authorization_endpoint"],
            client_id=self.settings.client_id,
            response_type="code",
            redirect_uri=self.settings.redirect_uri,
            scope=" ".join(self.settings.scopes),
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        flow = {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "next": safe_next(request.query_params.get("next")),
        }
        response = RedirectResponse(uri, status_code=302)
        sealed = self._sealer.seal(LOGIN_COOKIE, flow, LOGIN_LIFETIME_S)
        self._cookie(response, LOGIN_COOKIE, sealed, LOGIN_LIFETIME_S)
        return response

    async def callback(self, request: Request) -> Response:
        flow = self._sealer.open(LOGIN_COOKIE, request.cookies.get(LOGIN_COOKIE))
        if flow is None:
            raise LoginFailed("no login in progress (or it took too long): start again")
        params = request.query_params
        state = params.get("state", "")
        if not hmac.compare_digest(state.encode(), str(flow.get("state", "")).encode()):
            raise LoginFailed("login state does not match: start again")
        if "error" in params:
            raise LoginFailed(f"the issuer refused the login: {params['error'][:100]}")
        code = params.get("code")
        if not code:
            raise LoginFailed("the issuer sent no authorization code")
        id_token = await self._redeem(code, str(flow["verifier"]))
        validated = await self._id_tokens.validate(id_token)
        nonce = validated.claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), str(flow["nonce"]).encode()
        ):
            raise LoginFailed("ID token nonce does not match: start again")
        await self._resolver.for_token(validated)  # a user who cannot be mapped gets no session
        await self._end(request)  # a session this browser had before ends: one login, one id
        sid = await self._sessions.start(validated.issuer, validated.subject, SESSION_LIFETIME_S)
        response = RedirectResponse(safe_next(str(flow.get("next", "/"))), status_code=302)
        self._cookie(
            response,
            SESSION_COOKIE,
            self._sealer.seal(SESSION_COOKIE, self._session(validated, sid), SESSION_LIFETIME_S),
            SESSION_LIFETIME_S,
        )
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    def _session(self, token: ValidatedToken, sid: str) -> dict[str, Any]:
        claims = {k: token.claims[k] for k in self.settings.session_claims if k in token.claims}
        return {"iss": token.issuer, "sub": token.subject, "claims": claims, "sid": sid}

    async def _end(self, request: Request) -> None:
        """End the server-side session of the request's session cookie, if it has one."""
        sid = session_id(self._sealer.open(SESSION_COOKIE, request.cookies.get(SESSION_COOKIE)))
        if sid is not None:
            await self._sessions.end(sid)

    async def _redeem(self, code: str, verifier: str) -> str:
        meta = await self.metadata()
        try:
            response = await self._http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.settings.redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(self.settings.client_id, self.settings.client_secret),
            )
        except httpx.HTTPError as exc:
            raise DirectoryUnavailableError("the issuer's token endpoint") from exc
        if response.status_code != 200:
            raise LoginFailed(f"the issuer did not redeem the code ({response.status_code})")
        body = response.json()
        id_token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(id_token, str):
            raise LoginFailed("the issuer sent no ID token")
        return id_token

    async def logout(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        reason = foreign_reason(headers, self.settings.origin)
        if reason is not None:
            raise Forbidden(f"{reason}: log out with the Log out button of KubePie's own pages")
        await self._end(request)
        target = "/"
        try:
            end = (await self.metadata()).get("end_session_endpoint")
        except DirectoryUnavailableError:
            end = None
        if isinstance(end, str):
            target = f"{end}?{urlencode({'client_id': self.settings.client_id})}"
        response = RedirectResponse(target, status_code=302)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
