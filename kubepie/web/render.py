"""Jinja2 templates (package data under ``templates/``) and the static assets, loaded once.

:func:`make_environment` is called when the app is assembled (nothing at import time); every
template is autoescaped. :class:`Pages` renders a template into an HTML response with the
headers every page of the UI carries: no caching of pages that show private data, no framing
(clickjacking), no MIME sniffing, a content security policy that allows only this site's own
stylesheet and script.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.responses import HTMLResponse, Response

from kubepie.web.listing import human_size, human_time, iso_time


def page_headers(issuer: str) -> dict[str, str]:
    """Headers of every page. Forms may lead only here, or to the issuer (logging out
    redirects there, and browsers check the redirects of a form post too)."""
    parts = urlsplit(issuer)
    return {
        "cache-control": "no-store",
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
        "content-security-policy": (
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'; form-action 'self' {parts.scheme}://{parts.netloc}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    }


#: Static assets served under ``/static/``: name → content type.
ASSETS = {"kubepie.css": "text/css; charset=utf-8", "kubepie.js": "text/javascript"}


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kubepie.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["when"] = human_time
    env.filters["iso"] = iso_time
    return env


def load_assets() -> dict[str, bytes]:
    """The static files, read once from the package."""
    folder = importlib.resources.files("kubepie.web").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in ASSETS}


@dataclass(frozen=True, slots=True)
class Pages:
    """Renders templates with the context every page shares."""

    env: jinja2.Environment
    #: Values every template may use (product name, public URLs).
    common: Mapping[str, Any]
    #: Headers of every page (:func:`page_headers`).
    headers: Mapping[str, str]

    def html(self, template: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(template).render({**self.common, **context})

    def page(
        self,
        template: str,
        context: Mapping[str, Any],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return HTMLResponse(
            self.html(template, context),
            status_code=status,
            headers={**self.headers, **(headers or {})},
        )
