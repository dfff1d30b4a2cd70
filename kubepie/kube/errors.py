"""Errors raised by :mod:`kubepie.kube`.

The tree (``status`` is the HTTP status the API server answered, 0 when it was not reached)::

    KubeError              base; ``message`` is the API server's own message
    ├── NotFound           404: the object does not exist
    ├── Conflict           409: it exists already, or it changed since it was read
    ├── Forbidden          403: RBAC or an admission webhook refused the request
    ├── Invalid            422 (and 400): the object fails validation (schema, names)
    └── Unreachable        no answer (connection refused, TLS, timeout) or a 5xx

The client library's exceptions are translated in :mod:`kubepie.kube.client` with
``raise ... from exc``; no message contains a token.
"""

from __future__ import annotations


class KubeError(Exception):
    """Base of every error of :mod:`kubepie.kube`."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Forbidden(KubeError):
    pass


class Invalid(KubeError):
    pass


class Unreachable(KubeError):
    pass


def error_for(status: int, message: str, reason: str = "") -> KubeError:
    """The error for an API answer with ``status`` and the ``Status`` object's message."""
    kind: type[KubeError]
    if status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 403:
        kind = Forbidden
    elif status in (400, 422):
        kind = Invalid
    else:
        kind = Unreachable
    return kind(message, status=status, reason=reason)
