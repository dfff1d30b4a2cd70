"""Errors raised by :mod:`identity`.

The tree, and the HTTP status a caller should answer for each branch::

    IdentityError                      base; never raised itself
    ├── AuthenticationError            401: the credential itself is not acceptable
    │   └── TokenError                 a token failed validation; ``reason`` says why
    │       └── UnknownIssuerError     ``iss`` is none of the trusted issuers
    ├── AuthorizationError             403: authenticated, but may not be mapped / may not act
    │   ├── MappingError               claims cannot become an Identity (uid missing, uid 0,
    │   │                              below ``min_uid``, not in an allowed group, unknown user)
    │   └── ScopeError                 a WLCG scope does not grant the path / operation
    ├── DirectoryUnavailableError      503: the directory or issuer could not be reached
    │                                  (discovery, JWKS or introspection endpoint down)
    └── InvalidEntryError              a directory entry cannot be rendered safely (NSS fields
                                       with ``:`` or newlines); a configuration/data error

Third-party exceptions (``ldap3``, ``httpx``, ``jwt``) are translated where they are caught,
with ``raise ... from exc``; their messages never include token or password material.
"""

from __future__ import annotations


class IdentityError(Exception):
    """Base of every error raised by :mod:`identity`."""

    #: HTTP status a request handler answers with for this error.
    status: int = 500


class AuthenticationError(IdentityError):
    status = 401


class TokenError(AuthenticationError):
    """A token failed validation. ``reason`` is a short, loggable, secret-free explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownIssuerError(TokenError):
    """The token names an issuer that is not trusted (the reason never repeats the token)."""


class AuthorizationError(IdentityError):
    status = 403


class MappingError(AuthorizationError):
    pass


class ScopeError(AuthorizationError):
    pass


class DirectoryUnavailableError(IdentityError):
    status = 503


class InvalidEntryError(IdentityError):
    status = 500
