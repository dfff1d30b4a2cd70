"""Run the router's two listeners (main and S3) in one event loop until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Generator
from typing import Protocol

import uvicorn
import uvloop
from prometheus_client import CollectorRegistry

from kubepie.router.app import ErrorPage, RouterApps, WebRoutes, open_router
from kubepie.router.servers import ServerPool
from kubepie.settings.models import KubePieSettings

log = logging.getLogger("kubepie.router")


class ClosingPool(ServerPool, Protocol):
    async def aclose(self) -> None: ...


#: Builds the backend from the settings and the metrics registry (wired by ``kubepie serve``).
BackendFactory = Callable[[KubePieSettings, CollectorRegistry], ClosingPool]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(app: object, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        http="httptools",
        loop="none",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


@contextlib.asynccontextmanager
async def running_router(
    settings: KubePieSettings,
    make_backend: BackendFactory,
    registry: CollectorRegistry,
    web_routes: WebRoutes | None = None,
    error_page: ErrorPage | None = None,
) -> AsyncIterator[RouterApps]:
    backend = make_backend(settings, registry)
    try:
        async with open_router(
            settings, backend, registry=registry, web_routes=web_routes, error_page=error_page
        ) as apps:
            yield apps
    finally:
        await backend.aclose()


async def serve(
    settings: KubePieSettings,
    make_backend: BackendFactory,
    log_level: str,
    web_routes: WebRoutes | None = None,
    error_page: ErrorPage | None = None,
) -> None:
    registry = CollectorRegistry()
    async with running_router(settings, make_backend, registry, web_routes, error_page) as apps:
        listen = settings.listen
        servers = [_Server(uvicorn_config(apps.main, listen.host, listen.port, log_level))]
        if settings.s3_listen is not None:
            s3 = settings.s3_listen
            servers.append(_Server(uvicorn_config(apps.s3, s3.host, s3.port, log_level)))
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        log.info("router on %s:%d (public URL %s)", listen.host, listen.port, settings.public_url)
        await asyncio.gather(*(server.serve() for server in servers))


def serve_forever(
    settings: KubePieSettings,
    make_backend: BackendFactory,
    *,
    log_level: str = "info",
    web_routes: WebRoutes | None = None,
    error_page: ErrorPage | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; ``web_routes`` and ``error_page`` add the web UI (see
    ``open_router``)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    # One line per call to the issuer (discovery, keys, tokens) is noise, not news.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, make_backend, log_level, web_routes, error_page))
    return 0
