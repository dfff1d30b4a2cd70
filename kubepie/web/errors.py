"""Errors raised by :mod:`kubepie.web`.

The tree, and the HTTP status the web UI answers for each branch::

    WebError                    base; never raised itself
    ├── NotLoggedIn             401: no session (or it ended): the page offers the login
    ├── CsrfRefused             403: a form post without this session's CSRF token
    ├── PermissionDenied        403: the file server refused; the message names the permission
    ├── PageNotFound            404: no such file, folder or page
    ├── BadForm                 400: a form field is missing or not acceptable
    ├── AlreadyExists           409: the name is taken (new folder, rename)
    └── FileServerFailed        502: the user's file server answered something unexpected

Errors of other packages (the router's 503 for an unreachable file server, the identity
package's 503 for an unreachable directory, credential errors) keep their own ``status``; all
of them become pages in one place, :mod:`kubepie.web.errorpages`. Messages never contain a
token, a secret or a password.
"""

from __future__ import annotations


class WebError(Exception):
    """Base of every error raised by :mod:`kubepie.web`."""

    status: int = 500


class NotLoggedIn(WebError):
    status = 401


class CsrfRefused(WebError):
    status = 403


class PermissionDenied(WebError):
    status = 403


class PageNotFound(WebError):
    status = 404


class BadForm(WebError):
    status = 400


class AlreadyExists(WebError):
    status = 409


class FileServerFailed(WebError):
    status = 502
