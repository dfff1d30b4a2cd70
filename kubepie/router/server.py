"""Run the router's two listeners (main and S3) in one event loop until SIGTERM or SIGINT.

Start-up order matters when started as root (see :mod:`kubepie.router.account`): the backend
(and its fork helper) first, then both listening sockets, then every service of the router;
only then does the process drop to ``router_user``, before it serves its first request. Every
connection of both listeners is bounded by ``connections`` (see :mod:`kubepie.router.listener`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Protocol

import uvicorn
import uvloop
from prometheus_client import CollectorRegistry

from kubepie.router import account
from kubepie.router.account import RouterAccount
from kubepie.router.app import ErrorPage, WebRoutes, open_router
from kubepie.router.listener import ConnectionLimits, bounded_protocol
from kubepie.router.servers import ServerPool
from kubepie.settings.fields import ListenAddress
from kubepie.settings.models import ConnectionSettings, KubePieSettings

log = logging.getLogger("kubepie.router")


#: Descriptors kept free of client connections: upstream sockets beyond one per connection,
#: databases, the helper's pipes, logs.
_SPARE_DESCRIPTORS = 256


class ClosingPool(ServerPool, Protocol):
    async def start(self) -> None:
        """Start what the backend needs (the fork helper) before the router drops root."""
        ...

    async def aclose(self) -> None: ...


#: Builds the backend from the settings and the metrics registry (wired by ``kubepie serve``).
BackendFactory = Callable[[KubePieSettings, CollectorRegistry], ClosingPool]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def connection_limits(settings: ConnectionSettings) -> ConnectionLimits:
    return ConnectionLimits(
        max_head_size=settings.max_head_size,
        max_headers=settings.max_headers,
        head_timeout=settings.head_timeout,
        body_timeout=settings.body_timeout,
        idle_timeout=settings.idle_timeout,
        max_connections=settings.max_connections,
    )


def uvicorn_config(app: object, limits: ConnectionLimits, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        lifespan="off",
        log_level=log_level,
        access_log=False,
        http=bounded_protocol(limits),
        ws="none",
        loop="none",
        server_header=False,
        timeout_keep_alive=limits.idle_timeout,
        timeout_graceful_shutdown=10,
    )


def listen_socket(address: ListenAddress) -> socket.socket:
    """A listening TCP socket for ``address`` (bound here, so that it can be bound as root)."""
    host = address.host or None
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {address.host}:{address.port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {address.host}:{address.port}: {exc.strerror}"
        ) from exc
    sock.set_inheritable(False)
    return sock


def fit_descriptor_limit(connections: int) -> None:
    """Raise the soft ``RLIMIT_NOFILE`` (up to the hard one) so that ``connections`` client
    connections, each with its upstream connection, fit; warn when they cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + _SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "the descriptor limit (%d) is below what connections.max_connections needs "
            "(%d): lower it, or raise the limit (LimitNOFILE)",
            soft,
            wanted,
        )


async def serve(
    settings: KubePieSettings,
    make_backend: BackendFactory,
    log_level: str,
    web_routes: WebRoutes | None = None,
    error_page: ErrorPage | None = None,
    router_account: RouterAccount | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; with ``router_account`` (started as root), drop to it once
    everything that needs root is done."""
    registry = CollectorRegistry()
    limits = connection_limits(settings.connections)
    addresses = [settings.listen]
    if settings.s3_listen is not None:
        addresses.append(settings.s3_listen)
    fit_descriptor_limit(len(addresses) * limits.max_connections)
    backend = make_backend(settings, registry)
    sockets: list[socket.socket] = []
    try:
        await backend.start()  # the fork helper, while this process is still root
        sockets.extend(listen_socket(address) for address in addresses)
        async with open_router(
            settings, backend, registry=registry, web_routes=web_routes, error_page=error_page
        ) as apps:
            if router_account is not None:
                account.hand_over(settings.state_dir, _run_dir(settings), router_account)
                account.drop_to(router_account)
                log.info(
                    "router runs as %s (uid %d, gid %d); the backend helper keeps root",
                    router_account.name,
                    router_account.uid,
                    router_account.gid,
                )
            servers = [_Server(uvicorn_config(apps.main, limits, log_level))]
            if settings.s3_listen is not None:
                servers.append(_Server(uvicorn_config(apps.s3, limits, log_level)))
            loop = asyncio.get_running_loop()

            def stop() -> None:
                for server in servers:
                    server.should_exit = True

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop)
            listen = settings.listen
            log.info(
                "router on %s:%d (public URL %s)", listen.host, listen.port, settings.public_url
            )
            await asyncio.gather(
                *(
                    server.serve(sockets=[sock])
                    for server, sock in zip(servers, sockets, strict=True)
                )
            )
    finally:
        for sock in sockets:
            sock.close()
        await backend.aclose()


def _run_dir(settings: KubePieSettings) -> Path:
    """Where the local backend puts the users' sockets (see :mod:`kubepie.backends.local`)."""
    return settings.state_dir / "run"


def serve_forever(
    settings: KubePieSettings,
    make_backend: BackendFactory,
    *,
    log_level: str = "info",
    web_routes: WebRoutes | None = None,
    error_page: ErrorPage | None = None,
    router_account: RouterAccount | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; ``web_routes`` and ``error_page`` add the web UI (see
    ``open_router``); ``router_account``: drop root to it (see :func:`serve`)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    # One line per call to the issuer (discovery, keys, tokens) is noise, not news.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
    if router_account is not None:
        account.forbid_new_privileges()  # before any thread exists: every thread inherits it
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, make_backend, log_level, web_routes, error_page, router_account))
    return 0
