"""Assemble the router from its settings: services opened once, two ASGI apps sharing them.

:func:`open_router` is the lifespan of ``kubepie serve``: it opens the HTTP client (issuer
discovery, JWKS, token endpoint), the credential store, the identity directory and snapshot
store, the accounting log and the upstream pool, builds the main app (web, API, ``/dav``) and
the S3 app on top of one :class:`~kubepie.router.context.RouterContext`, and closes everything
when the block ends. The backend and the metrics registry are injected: the caller owns them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity.cache import CachedDirectory
from identity.claims import ClaimsPolicy
from identity.directory import Directory
from identity.errors import IdentityError
from identity.tokens import IssuerSettings, TokenSettings, TokenValidator
from kubepie.credentials.cipher import SecretCipher
from kubepie.credentials.errors import CredentialError
from kubepie.credentials.sqlite import SqliteCredentialStore
from kubepie.router.access import Principal
from kubepie.router.accounting import AccountingLog, RequestRecord
from kubepie.router.api import PRINCIPAL_STATE, Api, error_response
from kubepie.router.authn import Authenticator
from kubepie.router.content_security import UserContent
from kubepie.router.context import RouterContext
from kubepie.router.dav import LISTENER as DAV_LISTENER
from kubepie.router.dav import DavApp
from kubepie.router.errors import RouterError
from kubepie.router.identities import ClaimsSnapshots, IdentityResolver
from kubepie.router.login import Login, LoginSettings
from kubepie.router.metrics import RouterMetrics
from kubepie.router.origins import CsrfTokens, SameOriginWrites, origin_of
from kubepie.router.paths import DAV_PREFIX
from kubepie.router.responses import status_of
from kubepie.router.servers import ServerPool
from kubepie.router.session import CookieSealer
from kubepie.router.sessions import SqliteSessionStore
from kubepie.router.upstream import UpstreamPool
from kubepie.settings.models import KubePieSettings

#: Seconds the router waits for the issuer (discovery, keys, token endpoint).
ISSUER_TIMEOUT_S = 10.0


#: Builds extra web routes (the web UI) on the shared services; see :func:`open_router`.
WebRoutes = Callable[[RouterContext], Sequence[BaseRoute]]
#: Renders an error of a built-in web route (``/login``, ``/callback``, no such route...) as a
#: page for a browser, or returns ``None`` to answer as usual (JSON); given the HTTP status.
ErrorPage = Callable[[Request, BaseException, int], Response | None]


@dataclass(frozen=True, slots=True)
class RouterApps:
    main: ASGIApp
    s3: ASGIApp
    context: RouterContext


class Dispatcher:
    """``/dav`` straight to the WebDAV forwarder (no framework on the data path), the rest to
    Starlette."""

    def __init__(self, dav: ASGIApp, web: ASGIApp) -> None:
        self.dav = dav
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/"):
                await self.dav(scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            return
        await self.web(scope, receive, send)


class AccountedWeb:
    """Accounting and metrics for the web and API routes (``/healthz`` and ``/metrics`` are
    left out: probes and scrapes are not user requests). The principal, when the route
    authenticated one, is left in the request state by :mod:`kubepie.router.api`."""

    UNACCOUNTED = frozenset({"/healthz", "/metrics"})

    def __init__(self, app: ASGIApp, ctx: RouterContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.UNACCOUNTED:
            await self.app(scope, receive, send)
            return
        state: dict[str, object] = scope.setdefault("state", {})
        record = RequestRecord(scope["method"], scope["path"], started=time.monotonic())

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            elif message["type"] == "http.response.body":
                record.bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            principal = state.get(PRINCIPAL_STATE)
            if isinstance(principal, Principal):
                record.principal = principal
            self.ctx.account("web", record)


def claims_policy(settings: KubePieSettings) -> ClaimsPolicy:
    ident = settings.identity
    return ClaimsPolicy(
        username_claim=ident.username_claim,
        uid_claim=ident.uid_claim,
        gid_claim=ident.gid_claim,
        gids_claim=ident.gids_claim,
        groups_claim=ident.groups_claim,
        min_uid=ident.min_uid,
        min_gid=ident.effective_min_gid,
        allowed_low_gids=frozenset(ident.allowed_low_gids),
        allowed_groups=frozenset(ident.allowed_groups) or None,
    )


def build_directory(settings: KubePieSettings) -> Directory | None:
    """The configured directory (cached), or ``None`` for ``identity.source: claims``."""
    ident = settings.identity
    inner: Directory
    if ident.source == "ldap":
        from identity.ldap import LdapDirectory

        assert ident.ldap is not None
        inner = LdapDirectory(ident.ldap.directory_settings())
    elif ident.source == "static":
        from identity.static import StaticDirectory

        assert ident.static_file is not None
        inner = StaticDirectory.load(ident.static_file)
    else:
        return None
    return CachedDirectory(inner, ident.cache_ttl)


def token_validators(
    settings: KubePieSettings, http: httpx.AsyncClient
) -> tuple[TokenValidator, TokenValidator]:
    """Validators for bearer access tokens (our audiences; opaque ones by introspection with
    our client's credentials) and for ID tokens (our client id, never introspected)."""
    oidc = settings.oidc
    issuer = str(oidc.issuer)
    secret = oidc.client_secret.get_secret_value()

    def validator(audiences: tuple[str, ...], introspect: bool) -> TokenValidator:
        entry = IssuerSettings(
            issuer,
            audiences,
            introspection_client_id=oidc.client_id if introspect else None,
            introspection_client_secret=secret if introspect else None,
        )
        return TokenValidator(TokenSettings(issuers=(entry,), leeway_s=oidc.leeway), http)

    return validator(oidc.accepted_audiences, True), validator((oidc.client_id,), False)


def _error_handlers(error_page: ErrorPage | None) -> dict[type[Exception], Callable[..., Any]]:
    """Known errors and Starlette's own refusals (no such route, method not allowed) as JSON,
    or as ``error_page`` renders them for a browser."""

    async def known(request: Request, exc: Exception) -> Response:
        page = error_page(request, exc, status_of(exc)) if error_page is not None else None
        return page if page is not None else error_response(exc)

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        page = error_page(request, exc, exc.status_code) if error_page is not None else None
        if page is not None:
            return page
        return JSONResponse(
            {"error": type(exc).__name__, "message": exc.detail},
            exc.status_code,
            headers=exc.headers,
        )

    return {
        RouterError: known,
        IdentityError: known,
        CredentialError: known,
        HTTPException: http,
    }


def _home(request: Request) -> Response:
    return HTMLResponse(
        "<!doctype html><title>KubePie</title><h1>KubePie</h1>"
        '<p><a href="/login">Log in</a> · <a href="/api/v1/whoami">Who am I</a> · '
        '<a href="/logout">Log out</a></p>'
    )


async def _home_endpoint(request: Request) -> Response:
    return _home(request)


@contextlib.asynccontextmanager
async def open_router(
    settings: KubePieSettings,
    backend: ServerPool,
    *,
    registry: CollectorRegistry,
    directory: Directory | None = None,
    web_routes: WebRoutes | None = None,
    error_page: ErrorPage | None = None,
) -> AsyncIterator[RouterApps]:
    """Open every service, yield the apps, close everything. ``directory`` overrides the
    configured one (e.g. a directory shared with other components of one process);
    ``web_routes`` adds routes (the web UI) ahead of the built-in ones, so it may replace
    ``/``; ``error_page`` renders the built-in web routes' errors for browsers."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=ISSUER_TIMEOUT_S))
        keys = settings.credentials.keys()
        store = await SqliteCredentialStore.open(
            settings.credentials_database,
            SecretCipher(keys),
            settings.credentials.policy(),
        )
        stack.push_async_callback(store.close)
        policy = claims_policy(settings)
        directory = directory if directory is not None else build_directory(settings)
        snapshots = None
        if directory is None:
            fields = (
                policy.username_claim,
                policy.uid_claim,
                policy.gid_claim,
                policy.gids_claim,
                policy.groups_claim,
            )
            snapshots = ClaimsSnapshots(settings.state_dir / "identities.sqlite3", fields)
            stack.callback(snapshots.close)
        resolver = IdentityResolver(policy, directory=directory, snapshots=snapshots)
        sealer = CookieSealer.from_materials([k.material for k in keys])
        sessions = await SqliteSessionStore.open(settings.state_dir / "sessions.sqlite3")
        stack.push_async_callback(sessions.close)
        access_tokens, id_tokens = token_validators(settings, http)
        accounting = AccountingLog.open(
            settings.accounting.log_file, group=settings.accounting.group
        )
        stack.callback(accounting.close)
        pool = UpstreamPool()
        stack.push_async_callback(pool.aclose)
        ctx = RouterContext(
            authenticator=Authenticator(access_tokens, resolver, store, sealer, sessions),
            store=store,
            backend=backend,
            pool=pool,
            accounting=accounting,
            metrics=RouterMetrics(registry, backend.running),
        )
        session_claims = tuple(
            dict.fromkeys(
                (
                    policy.username_claim,
                    policy.uid_claim,
                    policy.gid_claim,
                    policy.gids_claim,
                    policy.groups_claim,
                )
            )
        )
        login = Login(
            LoginSettings(
                issuer=str(settings.oidc.issuer),
                client_id=settings.oidc.client_id,
                client_secret=settings.oidc.client_secret.get_secret_value(),
                scopes=settings.oidc.scopes,
                public_url=str(settings.public_url),
                session_claims=session_claims,
            ),
            http,
            id_tokens,
            resolver,
            sealer,
            sessions,
        )
        public_origin = origin_of(str(settings.public_url))
        api = Api(ctx, public_origin, CsrfTokens.from_material(keys[0].material))
        web = Starlette(
            routes=[
                *(web_routes(ctx) if web_routes is not None else ()),
                Route("/", _home_endpoint, methods=["GET"]),
                *login.routes(),
                *api.routes(),
            ],
            exception_handlers=_error_handlers(error_page),
        )
        from kubepie.router.s3front import S3Front

        public_host = urlsplit(str(settings.public_url)).netloc
        # User content (/dav, S3) is served passive and never acts with a browser's session.
        dav = UserContent(
            SameOriginWrites(DavApp(ctx, public_host), public_origin, ctx, DAV_LISTENER),
            listings=True,
        )
        main = Dispatcher(dav, AccountedWeb(web, ctx))
        yield RouterApps(main, UserContent(S3Front(ctx)), ctx)
