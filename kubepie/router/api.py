"""The JSON API: ``/api/v1/whoami`` and ``/api/v1/credentials``; ``/healthz``, ``/metrics``.

Credentials are managed with a session or a bearer token only: an app credential cannot mint,
list or revoke credentials (a leaked key must not be able to make itself permanent). A write
made by another origin's page is refused, and one authenticated by the session cookie must
show it comes from this site's pages (same-origin ``Origin`` or the session's CSRF token,
:mod:`kubepie.router.origins`): otherwise any page the browser shows, another site's or a
user's file, could mint a key with the visitor's session. Errors are JSON
(:mod:`kubepie.router.responses`), never sniffed as anything else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kubepie.credentials.models import Credential, Owner
from kubepie.router.access import AuthMethod, Principal
from kubepie.router.authn import SESSION_COOKIE, parse_cookies
from kubepie.router.context import RouterContext
from kubepie.router.errors import BadRequest, Forbidden
from kubepie.router.origins import CsrfTokens, check_session_write, is_unsafe, refuse_foreign
from kubepie.router.responses import error_headers, kind_of, message_of, status_of

Endpoint = Callable[[Request], Awaitable[Response]]
#: Key of the authenticated principal in the request state (read by the accounting).
PRINCIPAL_STATE = "kubepie_principal"
#: Largest JSON body accepted by the credentials endpoint.
MAX_BODY = 16 * 1024


def error_response(exc: BaseException) -> JSONResponse:
    """``exc`` as a JSON error (with the 401 challenges where they apply)."""
    status = status_of(exc)
    response = JSONResponse(
        {"error": kind_of(exc), "message": message_of(exc)},
        status,
        headers={"x-content-type-options": "nosniff"},
    )
    for name, value in error_headers(status):
        response.headers.append(name.decode(), value.decode())
    return response


def credential_json(credential: Credential) -> dict[str, Any]:
    return {
        "id": credential.id,
        "access_key_id": credential.access_key_id,
        "description": credential.description,
        "read_only": credential.read_only,
        "prefix": credential.prefix,
        "created_at": credential.created_at,
        "expires_at": credential.expires_at,
        "last_used_at": credential.last_used_at,
    }


def creation_params(body: Any) -> dict[str, Any]:
    """Validate a creation request body (pure): ``expires_in``, ``read_only``, ``prefix``,
    ``description``, all optional."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(body) - {"expires_in", "read_only", "prefix", "description"}
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not math.isfinite(expires_in)
    ):
        raise BadRequest("expires_in must be a number of seconds")
    read_only = body.get("read_only", False)
    if not isinstance(read_only, bool):
        raise BadRequest("read_only must be true or false")
    prefix = body.get("prefix", "")
    description = body.get("description", "")
    if not isinstance(prefix, str) or not isinstance(description, str):
        raise BadRequest("prefix and description must be strings")
    return {
        "expires_in": expires_in,
        "read_only": read_only,
        "prefix": prefix,
        "description": description,
    }


class Api:
    def __init__(self, ctx: RouterContext, public_origin: str, csrf: CsrfTokens) -> None:
        self.ctx = ctx
        #: ``scheme://host[:port]`` of the public URL: the one origin whose pages may write.
        self.public_origin = public_origin
        self.csrf = csrf

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/whoami", self._guard(self.whoami), methods=["GET"]),
            Route("/api/v1/credentials", self._guard(self.list), methods=["GET"]),
            Route("/api/v1/credentials", self._guard(self.create), methods=["POST"]),
            Route(
                "/api/v1/credentials/{credential_id}",
                self._guard(self.revoke),
                methods=["DELETE"],
            ),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    def _guard(self, handler: Callable[[Request, Principal], Awaitable[Response]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                headers = {k.lower(): v for k, v in request.headers.items()}
                refuse_foreign(request.method, headers, self.public_origin)
                principal = await self.ctx.authenticator.authenticate(headers, allow_session=True)
                setattr(request.state, PRINCIPAL_STATE, principal)
                if principal.method is AuthMethod.SESSION and is_unsafe(request.method):
                    check_session_write(
                        headers, self.public_origin, self.csrf, self._cookie(headers)
                    )
                return await handler(request, principal)
            except Exception as exc:
                return error_response(exc)

        return endpoint

    @staticmethod
    def _cookie(headers: dict[str, str]) -> str | None:
        return parse_cookies(headers.get("cookie")).get(SESSION_COOKIE)

    async def whoami(self, request: Request, principal: Principal) -> Response:
        ident = principal.identity
        body: dict[str, Any] = {
            "issuer": ident.issuer,
            "sub": ident.sub,
            "username": ident.username,
            "uid": ident.uid,
            "gid": ident.gid,
            "gids": list(ident.gids),
            "groups": list(ident.groups),
            "auth": principal.method.value,
        }
        headers = {"cache-control": "no-store"}
        cookie = self._cookie({k.lower(): v for k, v in request.headers.items()})
        if principal.method is AuthMethod.SESSION and cookie:
            # For this site's own scripts (no other origin can read this answer).
            body["csrf_token"] = self.csrf.token(cookie)
        return JSONResponse(body, headers=headers)

    def _owner(self, principal: Principal) -> Owner:
        if principal.method in (AuthMethod.BASIC, AuthMethod.SIGV4):
            raise Forbidden("app credentials cannot manage credentials: log in or use a token")
        ident = principal.identity
        return Owner(ident.issuer, ident.sub, ident.username)

    async def list(self, request: Request, principal: Principal) -> Response:
        owner = self._owner(principal)
        items = await self.ctx.store.list_for(owner)
        return JSONResponse({"credentials": [credential_json(c) for c in items]})

    async def create(self, request: Request, principal: Principal) -> Response:
        owner = self._owner(principal)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise BadRequest("body too large")
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest("body is not JSON") from exc
        created = await self.ctx.store.create(owner, **creation_params(body))
        data = credential_json(created.credential)
        data["secret_access_key"] = created.secret_access_key
        return JSONResponse(data, 201, headers={"cache-control": "no-store"})

    async def revoke(self, request: Request, principal: Principal) -> Response:
        owner = self._owner(principal)
        await self.ctx.store.revoke(owner, request.path_params["credential_id"])
        return Response(status_code=204)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "servers_running": self.ctx.backend.running()})

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
