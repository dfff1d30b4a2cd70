"""What the router needs from a backend: the per-user file server to forward to.

Structural protocols, so that any backend (:mod:`kubepie.backends` local processes, Kubernetes
pods) plugs in without the router importing it; the app is wired in ``kubepie serve``.
"""

from __future__ import annotations

from typing import Protocol

from identity.models import Identity


class Upstream(Protocol):
    """Where one user's file server listens and the secret it trusts."""

    @property
    def address(self) -> str:
        """WebDAV/HTTPS listener: ``unix:/path`` or ``host:port``."""
        ...

    @property
    def secret(self) -> str:
        """Sent as ``X-KubePie-Server-Secret``; never logged."""
        ...

    @property
    def s3_address(self) -> str | None:
        """S3 listener, or ``None`` when the server runs none."""
        ...


class ServerPool(Protocol):
    async def ensure(self, identity: Identity) -> Upstream:
        """Start the user's server if needed and wait until it is ready."""
        ...

    async def touch(self, identity: Identity) -> None:
        """Note activity (the idle reaper spares servers in use)."""
        ...

    async def report_failure(self, identity: Identity) -> None:
        """The server could not be reached: restart it on the next :meth:`ensure`."""
        ...

    def running(self) -> int: ...


def dav_address(upstream: Upstream) -> str | None:
    return upstream.address


def s3_address(upstream: Upstream) -> str | None:
    return upstream.s3_address
