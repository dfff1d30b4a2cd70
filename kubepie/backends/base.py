"""The backend plug point: what the router asks of whatever runs per-user file servers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from identity.models import Identity


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where one user's file server answers, and the secret it expects.

    ``address`` (WebDAV / HTTPS) and ``s3_address`` (S3, or None when the server runs none)
    are ``unix:/path/to.sock`` or ``127.0.0.1:port``; ``secret`` is the per-server secret the
    router sends as ``X-KubePie-Server-Secret`` on both (hidden from ``repr``).
    """

    address: str
    secret: str
    s3_address: str | None = None

    def __repr__(self) -> str:
        return (
            f"Upstream(address={self.address!r}, s3_address={self.s3_address!r}, secret=<hidden>)"
        )


class Backend(Protocol):
    """Runs per-user file servers on demand; see :class:`kubepie.backends.local.LocalBackend`."""

    async def ensure(self, identity: Identity) -> Upstream:
        """The identity's running server: started if needed, ready when returned.

        Raises :class:`~kubepie.backends.errors.BackendError` (403 or 503 branches).
        """
        ...

    async def touch(self, identity: Identity) -> None:
        """Record activity of the identity's server (it is stopped after ``idle_timeout``)."""
        ...

    async def report_failure(self, identity: Identity) -> None:
        """The router could not reach the server: check it, and restart on the next ensure."""
        ...

    async def aclose(self) -> None:
        """Stop every server and background task."""
        ...

    def running(self) -> int:
        """Servers running or starting now."""
        ...


class BackendMetrics(Protocol):
    """Hooks the backend reports to (see :mod:`kubepie.backends.metrics`)."""

    def spawn_finished(self, seconds: float, *, ok: bool) -> None:
        """A server start ended after ``seconds`` (ready, or failed when ``ok`` is false)."""
        ...

    def servers_running(self, count: int) -> None:
        """The number of servers running or starting changed to ``count``."""
        ...


class NoMetrics:
    """A :class:`BackendMetrics` that records nothing."""

    def spawn_finished(self, seconds: float, *, ok: bool) -> None:
        return None

    def servers_running(self, count: int) -> None:
        return None
