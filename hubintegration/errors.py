"""Errors raised by :mod:`hubintegration`.

The tree, and what the Hub answers for each branch::

    HubIntegrationError                base; never raised itself
    ├── SettingsError                  the ``custom`` values are invalid; names the bad key
    ├── SpawnRefused                   403 at spawn: this user may not start this server
    │   ├── ProfileRefused             the profile / compute instance / image is unknown or not
    │   │                              allowed for the user's roles and groups
    │   ├── UnmappableUser             the user's ``auth_state`` / directory entry does not give
    │   │                              a POSIX identity (the message says why: uid missing,
    │   │                              uid 0, too low, not in the directory, ...)
    │   └── DirectoryDown              503: the directory could not be asked; fail closed
    └── SidecarError                   a sidecar could not talk to the Hub or the issuer
        ├── HubApiError                the Hub API answered an error (``status`` is its code)
        └── IssuerError                the token endpoint refused a refresh or was unreachable

Third-party exceptions (``httpx``, ``pydantic``, ``identity.errors``) are translated where they
are caught, with ``raise ... from exc``; no message ever contains a token.
"""

from __future__ import annotations


class HubIntegrationError(Exception):
    """Base of every error raised by :mod:`hubintegration`."""


class SettingsError(HubIntegrationError):
    """The chart's ``custom`` values cannot be used; the message names the key."""


class SpawnRefused(HubIntegrationError):
    """A spawn that must not happen; the message is shown to the user."""

    status = 403


class ProfileRefused(SpawnRefused):
    pass


class UnmappableUser(SpawnRefused):
    pass


class DirectoryDown(SpawnRefused):
    status = 503


class SidecarError(HubIntegrationError):
    pass


class HubApiError(SidecarError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class IssuerError(SidecarError):
    pass
