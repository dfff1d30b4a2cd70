"""The DEVELOPMENT-ONLY OpenID provider of ``kubepie demo``: loopback only, demo passwords.

Endpoints (``{issuer}`` is ``http://127.0.0.1:<port>``):

* ``/.well-known/openid-configuration`` and ``/jwks``: discovery and the RS256 key;
* ``/authorize``: a login form listing the demo users (GET), then the password check and the
  redirect with a single-use code (POST); authorization code flow with PKCE ``S256`` only,
  ``state`` and ``nonce`` passed through (:mod:`kubepie.demo.grants`);
* ``/token``: ``authorization_code`` and ``refresh_token`` grants, client authentication by
  ``client_secret_basic`` or ``client_secret_post`` (constant-time comparison);
* ``/userinfo`` (bearer access token) and ``/logout`` (the ``end_session_endpoint``).

:func:`bind_loopback` refuses any address that is not loopback, so this provider, whose
passwords are printed on the terminal, can never be reached from another machine. Every page
and the start-up log say "DEVELOPMENT ISSUER — NOT FOR PRODUCTION".
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlencode

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from kubepie.demo.accounts import DEV_WARNING, Population, claims_for
from kubepie.demo.errors import BindRefused, GrantError
from kubepie.demo.grants import (
    AuthorizationRequest,
    Client,
    Grant,
    GrantStore,
    parse_authorization_request,
)
from kubepie.demo.keys import ALGORITHM
from kubepie.demo.tokens import TokenMinter

log = logging.getLogger(__name__)

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_REQUEST_FIELDS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)


def bind_loopback(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; :class:`BindRefused` unless ``host`` is loopback."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BindRefused(
            f"the development issuer listens only on a loopback address, not {host!r}: its "
            "passwords are printed on the terminal"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def discovery(issuer: str) -> dict[str, object]:
    """The discovery document of the provider at ``issuer``. Pure."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/logout",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": [
            "sub",
            "preferred_username",
            "name",
            "email",
            "uid",
            "gid",
            "gids",
            "groups",
        ],
        "authorization_response_iss_parameter_supported": True,
    }


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · {DEV_WARNING}</title>"
        "<style>body{font-family:sans-serif;max-width:34em;margin:2em auto;padding:0 1em}"
        ".dev{background:#b00;color:#fff;padding:.6em;font-weight:bold;text-align:center}"
        "label,input,button{display:block;margin:.4em 0}td{padding:.2em .8em}</style>"
        f"</head><body><p class=dev role=alert>{DEV_WARNING}</p><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>"
    )
    return HTMLResponse(text, status, headers={**_NO_STORE, "X-Frame-Options": "DENY"})


def _error_json(exc: GrantError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="dev issuer"'
    return JSONResponse(
        {"error": exc.code, "error_description": exc.description}, exc.status, headers=headers
    )


def _client_credentials(request: Request, form: Mapping[str, str]) -> tuple[str, str]:
    """``(client_id, secret)`` from HTTP Basic or the form (``client_secret_post``)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise GrantError("invalid_client", "malformed Basic credentials", 401) from exc
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise GrantError("invalid_client", "malformed Basic credentials", 401)
        return unquote_plus(client_id), unquote_plus(secret)
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise GrantError("invalid_client", "client authentication is required", 401)
    return client_id, secret


@dataclass
class DevIssuer:
    """The provider's state; :meth:`app` is its ASGI application."""

    issuer: str
    population: Population
    clients: Mapping[str, Client]
    minter: TokenMinter
    grants: GrantStore
    clock: Callable[[], float] = time.time

    def app(self) -> Starlette:
        log.warning("%s at %s", DEV_WARNING, self.issuer)
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize_form, methods=["GET"]),
                Route("/authorize", self._authorize_login, methods=["POST"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo, methods=["GET", "POST"]),
                Route("/logout", self._logout, methods=["GET", "POST"]),
                Route("/", self._home),
            ]
        )

    async def _home(self, request: Request) -> Response:
        rows = "".join(
            f"<tr><td>{html.escape(u.username)}</td><td>{u.uid}</td>"
            f"<td>{html.escape(', '.join(u.group_names))}</td>"
            f"<td><code>{html.escape(u.password)}</code></td></tr>"
            for u in self.population.users
        )
        return _page(
            "KubePie demo issuer",
            "<p>This OpenID provider exists only for <code>kubepie demo</code>.</p>"
            "<table><tr><th>user</th><th>uid</th><th>groups</th><th>password</th></tr>"
            f"{rows}</table>",
        )

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(discovery(self.issuer))

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(self.minter.key.jwks())

    def _login_form(
        self, params: Mapping[str, str], message: str = "", status: int = 200
    ) -> Response:
        hidden = "".join(
            f'<input type=hidden name={name} value="{html.escape(params[name])}">'
            for name in _REQUEST_FIELDS
            if params.get(name)
        )
        users = "".join(
            f"<li><code>{html.escape(u.username)}</code> / "
            f"password <code>{html.escape(u.password)}</code></li>"
            for u in self.population.users
        )
        alert = f"<p role=alert><strong>{html.escape(message)}</strong></p>" if message else ""
        return _page(
            "Log in to the KubePie demo",
            f"{alert}<form method=post action=/authorize>{hidden}"
            "<label for=username>User</label>"
            "<input id=username name=username autocomplete=username required autofocus>"
            "<label for=password>Password</label>"
            "<input id=password name=password type=password required>"
            "<button type=submit>Log in</button></form>"
            f"<p>Demo users:</p><ul>{users}</ul>",
            status,
        )

    async def _authorize_form(self, request: Request) -> Response:
        params = dict(request.query_params)
        try:
            parse_authorization_request(params, self.clients)
        except GrantError as exc:
            return _page("Login request refused", f"<p>{html.escape(str(exc))}</p>", 400)
        return self._login_form(params)

    async def _authorize_login(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            auth = parse_authorization_request(form, self.clients)
        except GrantError as exc:
            return _page("Login request refused", f"<p>{html.escape(str(exc))}</p>", 400)
        user = self.population.get(form.get("username", ""))
        if user is None or not _password_ok(form.get("password", ""), user.password):
            log.info("dev issuer: failed login for %r", form.get("username", "")[:64])
            return self._login_form(form, "Unknown user or wrong password.", 401)
        code = self.grants.issue_code(self._grant(auth, user.username))
        log.info("dev issuer: %s logged in for client %s", user.username, auth.client_id)
        query = {"code": code, "iss": self.issuer}
        if auth.state is not None:
            query["state"] = auth.state
        separator = "&" if "?" in auth.redirect_uri else "?"
        return RedirectResponse(f"{auth.redirect_uri}{separator}{urlencode(query)}", 303)

    def _grant(self, auth: AuthorizationRequest, username: str) -> Grant:
        return Grant(
            client_id=auth.client_id,
            username=username,
            scope=auth.scope,
            auth_time=self.clock(),
            nonce=auth.nonce,
            redirect_uri=auth.redirect_uri,
            code_challenge=auth.code_challenge,
        )

    def _client(self, request: Request, form: Mapping[str, str]) -> Client:
        client_id, secret = _client_credentials(request, form)
        client = self.clients.get(client_id)
        if client is None or not client.authenticates(secret):
            raise GrantError("invalid_client", "client authentication failed", 401)
        return client

    async def _token(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            client = self._client(request, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                grant = self.grants.redeem_code(
                    form.get("code", ""),
                    client.client_id,
                    form.get("redirect_uri", ""),
                    form.get("code_verifier", ""),
                )
            elif grant_type == "refresh_token":
                grant = self.grants.redeem_refresh_token(
                    form.get("refresh_token", ""), client.client_id
                )
            else:
                raise GrantError("unsupported_grant_type", f"grant_type {grant_type!r}")
            user = self.population.get(grant.username)
            if user is None:
                raise GrantError("invalid_grant", "the user no longer exists")
        except GrantError as exc:
            return _error_json(exc)
        refresh = self.grants.issue_refresh_token(grant)
        answer = self.minter.token_response(user, grant, refresh)
        return JSONResponse(answer, headers=_NO_STORE)

    async def _userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            claims = jwt.decode(
                token,
                self.minter.key.public_key,
                algorithms=[ALGORITHM],
                audience=self.minter.audience,
                issuer=self.issuer,
            )
        except jwt.InvalidTokenError:
            claims = None
        user = self.population.get(str(claims.get("sub"))) if claims else None
        if scheme.lower() != "bearer" or user is None:
            return JSONResponse(
                {"error": "invalid_token"},
                401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return JSONResponse({"sub": user.username, **claims_for(user)}, headers=_NO_STORE)

    def _id_token_hint(self, id_token: str | None) -> tuple[str, str] | None:
        """(client id, username) of an ID token this issuer signed (expired ones included)."""
        if not id_token:
            return None
        try:
            claims = jwt.decode(
                id_token,
                self.minter.key.public_key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"verify_exp": False, "verify_aud": False},
            )
        except jwt.InvalidTokenError:
            return None
        aud, sub = claims.get("aud"), claims.get("sub")
        if not isinstance(aud, str) or aud not in self.clients or not isinstance(sub, str):
            return None
        return aud, sub

    async def _logout(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        target = params.get("post_logout_redirect_uri")
        hint = self._id_token_hint(params.get("id_token_hint"))
        client_id = params.get("client_id") or (hint[0] if hint else None)
        client = self.clients.get(client_id or "")
        if hint is not None:
            self.grants.revoke_user(*hint)  # the user's refresh tokens at that client
        if target and client is not None and target in client.post_logout_redirect_uris:
            if params.get("state"):
                separator = "&" if "?" in target else "?"
                target = f"{target}{separator}{urlencode({'state': params['state']})}"
            return RedirectResponse(target, 303)
        back = ""
        if client is not None and client.post_logout_redirect_uris:
            link = html.escape(client.post_logout_redirect_uris[0])
            back = f'<p><a href="{link}">Back to KubePie</a></p>'
        return _page("Logged out", f"<p>You are logged out of the demo issuer.</p>{back}")


def _password_ok(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
