"""``kubepie serve --config FILE``: the router and its S3 listener, with the local backend.

Both listeners are uvicorn servers in one event loop sharing one set of services (HTTP client,
credential store, directory, backend), opened before the first request and closed after the
last; SIGTERM and SIGINT stop both and then every per-user server.
"""

from __future__ import annotations

import argparse
import sys

from kubepie.cli.options import add_option

NAME = "serve"
HELP = "Run the router (web, WebDAV, API) and the S3 endpoint with per-user file servers."


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--config", required=True, metavar="FILE", help="the YAML configuration")
    add_option(
        parser,
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level of the router's own messages",
    )


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from kubepie.backends.local import LocalBackend
    from kubepie.backends.metrics import PrometheusBackendMetrics
    from kubepie.router.server import serve_forever
    from kubepie.settings.errors import ConfigError
    from kubepie.settings.loader import load_config
    from kubepie.settings.models import KubePieSettings
    from kubepie.web.app import web_ui

    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        print(f"kubepie serve: {exc}", file=sys.stderr)
        return 2

    def local_backend(settings: KubePieSettings, registry: CollectorRegistry) -> LocalBackend:
        return LocalBackend(
            settings.backend,
            settings.mount_specs,
            settings.state_dir,
            metrics=PrometheusBackendMetrics(registry),
        )

    ui = web_ui(settings)
    return serve_forever(
        settings,
        local_backend,
        log_level=args.log_level,
        web_routes=ui.web_routes,
        error_page=ui.error_page,
    )
