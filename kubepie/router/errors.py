"""Errors raised by :mod:`kubepie.router`.

The tree, and the HTTP status the router answers for each branch::

    RouterError                        base; never raised itself
    ├── Unauthenticated                401: no usable credential; ``challenge`` says which
    │                                  schemes the client may retry with
    ├── Forbidden                      403: authenticated, but this request is not allowed
    ├── BadRequest                     400: a malformed path, header or body
    ├── NotFound                       404: no such route or mount
    ├── LoginFailed                    400: the browser login flow went wrong (state, nonce,
    │                                  issuer error); the user starts again
    ├── AccountingFileError            at start: the accounting file cannot be opened private
    ├── PrivilegeDropFailed            at start: the router cannot become ``router_user``
    ├── SessionStoreError              503: the browser session store cannot be read or written
    └── UpstreamError                  the user's file server could not serve the request
        ├── UpstreamUnavailable        503: no connection (not running, crashed): the
        │                              backend is told and the request retried once
        └── UpstreamBroken             502: the connection failed mid-exchange; never retried

Errors of other packages keep their own ``status`` (:mod:`identity.errors` 401/403/503,
:mod:`kubepie.credentials.errors` 400/401/403/404/500, :mod:`kubepie.s3.errors` for the S3
listener) and are rendered by :mod:`kubepie.router.responses`, the one place that turns errors
into responses. Messages never contain a token, a secret or a password.
"""

from __future__ import annotations


class RouterError(Exception):
    """Base of every error raised by :mod:`kubepie.router`."""

    status: int = 500


class Unauthenticated(RouterError):
    status = 401


class Forbidden(RouterError):
    status = 403


class BadRequest(RouterError):
    status = 400


class NotFound(RouterError):
    status = 404


class LoginFailed(RouterError):
    status = 400


class AccountingFileError(RouterError):
    """The accounting file cannot be opened with the permissions it must have (at start)."""


class SessionStoreError(RouterError):
    """The store of live browser sessions cannot be used: fail closed (no session opens)."""

    status = 503


class PrivilegeDropFailed(RouterError):
    """At start: the router, started as root, cannot run as its own account."""


class UpstreamError(RouterError):
    status = 502


class UpstreamUnavailable(UpstreamError):
    status = 503


class UpstreamBroken(UpstreamError):
    status = 502
