"""Assemble the web UI on the router's shared services.

:func:`web_ui` reads what the UI needs from the settings once and returns the two plug-ins of
:func:`kubepie.router.app.open_router`: ``web_routes`` (the pages, built on the
:class:`~kubepie.router.context.RouterContext` when the router opens) and ``error_page`` (the
router's own browser-facing errors as pages). ``kubepie serve`` wires both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kubepie.router.context import RouterContext
from kubepie.settings.models import KubePieSettings
from kubepie.web.account import AccountPages
from kubepie.web.browser import FileBrowser
from kubepie.web.csrf import CSRF_FIELD, CsrfGuard
from kubepie.web.errorpages import error_page_for
from kubepie.web.guard import Guard
from kubepie.web.render import ASSETS, Pages, load_assets, make_environment, page_headers
from kubepie.web.settings import WebSettings

#: Seconds browsers may keep the stylesheet and script (they change only with a release).
ASSET_MAX_AGE = 3600


@dataclass(frozen=True, slots=True)
class WebUi:
    """The plug-ins for :func:`kubepie.router.app.open_router`."""

    web_routes: Callable[[RouterContext], Sequence[BaseRoute]]
    error_page: Callable[[Request, BaseException, int], Response | None]


def asset_routes(assets: dict[str, bytes]) -> list[BaseRoute]:
    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return Response("not found\n", 404, media_type="text/plain")
        return Response(
            assets[name],
            media_type=ASSETS[name],
            headers={
                "cache-control": f"public, max-age={ASSET_MAX_AGE}",
                "x-content-type-options": "nosniff",
            },
        )

    return [Route("/static/{name}", asset, methods=["GET", "HEAD"])]


def page_defaults(web: WebSettings) -> dict[str, Any]:
    """What every template may use; pages override ``user``, ``csrf``, ``title``..."""
    return {
        "public_url": web.public_url,
        "user": None,
        "csrf": "",
        "csrf_field": CSRF_FIELD,
        "nav": "",
        "flash": None,
        "title": "KubePie",
    }


def web_ui(settings: KubePieSettings) -> WebUi:
    """The web UI for ``settings``: templates and assets loaded now, routes built later."""
    web = WebSettings.from_settings(settings)
    pages = Pages(make_environment(), page_defaults(web), page_headers(str(settings.oidc.issuer)))
    assets = load_assets()
    csrf = CsrfGuard.from_material(web.csrf_material)

    def routes(ctx: RouterContext) -> list[BaseRoute]:
        guard = Guard(ctx, web, pages, csrf)
        return [
            *asset_routes(assets),
            *FileBrowser(guard).routes(),
            *AccountPages(guard).routes(),
        ]

    return WebUi(routes, error_page_for(pages))
