"""Errors as pages: what happened and what to do, for browsers (``Accept: text/html``).

One place turns any error of the web UI, the router, the identity mapping or the credential
store into an :class:`ErrorInfo` (:func:`describe`, pure) and a page. API and WebDAV clients
keep their formats: :func:`wants_html` decides, and the router's own routes ask
:func:`error_page_for` only through the ``error_page`` plug point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from identity.errors import DirectoryUnavailableError
from kubepie.router.errors import UpstreamError
from kubepie.router.responses import message_of, status_of
from kubepie.web.errors import CsrfRefused
from kubepie.web.render import Pages

#: The challenge of a 401 page (see :func:`error_response`).
BROWSER_CHALLENGE = 'Bearer realm="kubepie"'


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    status: int
    title: str
    what: str
    todo: str
    #: Offer the login button (401).
    login: bool = False


def wants_html(request: Request) -> bool:
    """A browser navigation: it asks for HTML (API clients, curl and WebDAV clients do not)."""
    return "text/html" in request.headers.get("accept", "")


def describe(exc: BaseException, status: int) -> ErrorInfo:
    """What to tell the user about ``exc`` answered with ``status`` (pure)."""
    detail = str(exc.detail) if isinstance(exc, HTTPException) else message_of(exc)
    if status == 401:
        return ErrorInfo(
            401,
            "Please log in",
            "You are not logged in, or your session has ended.",
            "Log in with your institution's account to continue.",
            login=True,
        )
    if isinstance(exc, CsrfRefused):
        return ErrorInfo(
            403,
            "Form refused",
            "This form was not sent from a page of this site (its security token is missing "
            "or belongs to another session), so nothing was changed.",
            "Go back, reload the page and send the form again.",
        )
    if status == 403:
        return ErrorInfo(
            403,
            "Permission denied",
            detail,
            "If you need this, ask the owner of the folder or your administrator for the "
            "permission named above.",
        )
    if status == 404:
        return ErrorInfo(
            404,
            "Not found",
            detail if detail and detail != "Not Found" else "There is no page at this address.",
            "Check the address, or start again from your files.",
        )
    if status == 503 and isinstance(exc, DirectoryUnavailableError):
        return ErrorInfo(
            503,
            "Directory unreachable",
            "The user directory (or the login service) cannot be reached right now, so "
            "KubePie cannot tell who you are and lets no one in.",
            "Try again in a minute. If it persists, tell your administrator.",
        )
    if status in (502, 503) and isinstance(exc, UpstreamError):
        return ErrorInfo(
            status,
            "File server unavailable",
            "Your personal file server could not be started or reached.",
            "Try again in a moment. If it persists, tell your administrator.",
        )
    if status == 503:
        return ErrorInfo(
            503,
            "Service unavailable",
            detail,
            "Try again in a minute. If it persists, tell your administrator.",
        )
    if 400 <= status < 500:
        return ErrorInfo(
            status, "Request not accepted", detail, "Go back, correct it and try again."
        )
    return ErrorInfo(
        status,
        "Something went wrong",
        detail if status != 500 else "An unexpected error happened on the server.",
        "Try again. If it persists, tell your administrator (the time helps them find it).",
    )


def error_response(
    pages: Pages,
    request: Request,
    exc: BaseException,
    status: int | None = None,
    context: Mapping[str, Any] | None = None,
) -> Response:
    """The page for ``exc``. A 401 page challenges for Bearer only: a Basic challenge would
    make the browser ask for a password in a dialog of its own instead of showing the page's
    login button."""
    status = status if status is not None else status_of(exc)
    info = describe(exc, status)
    values = {**(context or {}), "error": info, "title": info.title, "next": request.url.path}
    headers = {"www-authenticate": BROWSER_CHALLENGE} if info.status == 401 else None
    return pages.page("error.html", values, status=info.status, headers=headers)


def error_page_for(pages: Pages) -> Callable[[Request, BaseException, int], Response | None]:
    """The router's ``error_page`` plug: a page for browsers, ``None`` (JSON) for the rest."""

    def render(request: Request, exc: BaseException, status: int) -> Response | None:
        if request.url.path.startswith("/api/") or not wants_html(request):
            return None
        return error_response(pages, request, exc, status)

    return render
