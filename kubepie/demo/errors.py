"""Errors of the embedded demo.

Tree::

    DemoError                   anything that stops the demo from starting
    ├── BindRefused             the dev issuer was asked to listen beyond loopback
    ├── SampleDataError         the sample tree cannot be created (e.g. a path is not a dir)
    └── StartupError            the router did not come up (exited, or /healthz never answered)

    GrantError                  an OAuth request the dev issuer refuses (rendered as RFC 6749
                                JSON: ``error`` is the RFC error code, the message its
                                description)
"""

from __future__ import annotations


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


class BindRefused(DemoError):
    """The development issuer only ever listens on a loopback address."""


class SampleDataError(DemoError):
    """The sample data tree cannot be created."""


class StartupError(DemoError):
    """The router did not become ready."""


class GrantError(Exception):
    """An OAuth 2.0 request the dev issuer refuses; ``code`` is the RFC 6749 error code."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status
