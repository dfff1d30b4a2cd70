"""Errors raised by :mod:`kubepie.backends`.

The tree, and the HTTP status a request handler answers for each branch::

    BackendError                   base; never raised itself
    ├── IdentityRefused            403: this backend will not run a server for the identity
    │                              (uid or gid 0; an unprivileged backend asked for a user
    │                              other than the one it runs as)
    └── BackendUnavailable         503: no server for now; worth retrying later
        ├── StartTimeout           the server did not answer its readiness probe within
        │                          ``backend.start_timeout``
        ├── StartFailed            the server process exited (or could not be forked) before
        │                          it was ready; the exit status is in the message
        ├── CapacityExhausted      ``backend.max_servers`` servers run and none has been idle
        │                          long enough to be stopped for this one
        └── BackendClosed          the backend is shutting down

``OSError`` from sockets, pipes and the helper process is translated where it is caught, with
``raise ... from exc``. No message contains a per-server secret.
"""

from __future__ import annotations


class BackendError(Exception):
    """Base of every error raised by :mod:`kubepie.backends`."""

    #: HTTP status a request handler answers with for this error.
    status: int = 500


class IdentityRefused(BackendError):
    status = 403


class BackendUnavailable(BackendError):
    status = 503
    #: Seconds a client may wait before retrying (``Retry-After``).
    retry_after: int = 5


class StartTimeout(BackendUnavailable):
    pass


class StartFailed(BackendUnavailable):
    pass


class CapacityExhausted(BackendUnavailable):
    retry_after = 30


class BackendClosed(BackendUnavailable):
    pass
