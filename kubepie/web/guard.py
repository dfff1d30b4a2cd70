"""Who is browsing, and the checks every page and form goes through.

Pages of the UI authenticate with the browser session only (the cookie ``/callback`` sets):
an app credential or a bearer token never opens them, so no ambient credential other than the
``SameSite=Lax`` session cookie can drive a form. Every POST is checked for this session's CSRF
token (:mod:`kubepie.web.csrf`) before it does anything, and refused outright when the browser
says another origin's page sent it (:func:`kubepie.router.origins.foreign_reason`: the S3
listener's port is the same *site*, so ``SameSite`` alone would let its pages through). Any
error of a page becomes an error page (:mod:`kubepie.web.errorpages`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kubepie.router.access import Principal
from kubepie.router.api import PRINCIPAL_STATE
from kubepie.router.authn import SESSION_COOKIE
from kubepie.router.context import RouterContext
from kubepie.router.origins import foreign_reason, origin_of
from kubepie.web.csrf import CSRF_FIELD, CsrfGuard
from kubepie.web.errorpages import error_response
from kubepie.web.errors import BadForm, CsrfRefused, NotLoggedIn
from kubepie.web.render import Pages
from kubepie.web.settings import WebSettings

Handler = Callable[[Request], Awaitable[Response]]
#: Most fields a plain (urlencoded) form of the UI may have.
MAX_FORM_FIELDS = 16


@dataclass(frozen=True, slots=True)
class WebSession:
    """A logged-in browser: the principal, and the CSRF token its forms carry."""

    principal: Principal
    csrf: str


class Guard:
    """The shared services of the UI's pages (see the module docstring)."""

    def __init__(
        self, ctx: RouterContext, settings: WebSettings, pages: Pages, csrf: CsrfGuard
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.pages = pages
        self.csrf = csrf

    async def session(self, request: Request) -> WebSession | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        principal = await self.ctx.authenticator.session(cookie)
        if principal is None:
            return None
        setattr(request.state, PRINCIPAL_STATE, principal)  # for the accounting line
        return WebSession(principal, self.csrf.token(cookie))

    async def require(self, request: Request) -> WebSession:
        session = await self.session(request)
        if session is None:
            raise NotLoggedIn("log in to see this page")
        return session

    def check_token(self, request: Request, token: str | None) -> None:
        """Raise :class:`CsrfRefused` unless ``token`` is this session's token and the
        browser does not say that another origin's page sent the request."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        reason = foreign_reason(headers, origin_of(self.settings.public_url))
        if reason is not None:
            raise CsrfRefused(f"{reason}: refused")
        if not self.csrf.valid(request.cookies.get(SESSION_COOKIE), token):
            raise CsrfRefused("the form's CSRF token is missing or wrong")

    async def form(self, request: Request) -> dict[str, str]:
        """A urlencoded form's fields, once its CSRF token has been checked."""
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            self.check_token(request, None)
            raise BadForm("this form must be sent urlencoded")
        async with request.form(max_files=0, max_fields=MAX_FORM_FIELDS) as data:
            fields = {k: v for k, v in data.items() if isinstance(v, str)}
        self.check_token(request, fields.get(CSRF_FIELD))
        return fields

    def context(self, session: WebSession | None, **values: Any) -> dict[str, Any]:
        """What every template gets, plus ``values``."""
        if session is None:
            return dict(values)
        return {"user": session.principal.identity, "csrf": session.csrf, **values}

    def page(self, template: str, context: Mapping[str, Any], status: int = 200) -> Response:
        return self.pages.page(template, context, status)

    def handler(self, handle: Handler) -> Handler:
        """``handle`` with every error answered as a page."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return await self.error(request, exc)

        return endpoint

    async def error(self, request: Request, exc: BaseException) -> Response:
        """The error page for ``exc``, with the menu when the user is logged in."""
        session = None
        if not isinstance(exc, NotLoggedIn):
            with contextlib.suppress(Exception):  # the error may be that no one can log in
                session = await self.session(request)
        return error_response(self.pages, request, exc, context=self.context(session))
