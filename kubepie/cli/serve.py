"""``kubepie serve --config FILE``: the router and its S3 listener, with the local backend.

Both listeners are uvicorn servers in one event loop sharing one set of services (HTTP client,
credential store, directory, backend), opened before the first request and closed after the
last; SIGTERM and SIGINT stop both and then every per-user server.

Started as root, the router drops to ``router_user`` once the backend's fork helper runs and
both ports are bound (see :mod:`kubepie.router.account`); the helper alone keeps root.
"""

from __future__ import annotations

import argparse
import logging
import os
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

    from kubepie.backends.kubernetes import KubernetesBackend
    from kubepie.backends.local import LocalBackend
    from kubepie.backends.metrics import PrometheusBackendMetrics
    from kubepie.kube.client import connect
    from kubepie.router.account import RouterAccount, lookup
    from kubepie.router.errors import RouterError
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

    account: RouterAccount | None = None
    if os.geteuid() == 0:
        if settings.router_user is None:
            logging.getLogger("kubepie.router").warning(
                "router_user is null: the router keeps root while it serves the network"
            )
        else:
            try:
                account = lookup(settings.router_user)
            except RouterError as exc:
                print(f"kubepie serve: {exc}", file=sys.stderr)
                return 2

    def local_backend(settings: KubePieSettings, registry: CollectorRegistry) -> LocalBackend:
        ident = settings.identity
        return LocalBackend(
            settings.backend,
            settings.mount_specs,
            settings.state_dir,
            metrics=PrometheusBackendMetrics(registry),
            min_uid=ident.min_uid,
            min_gid=ident.effective_min_gid,
            allowed_low_gids=frozenset(ident.allowed_low_gids),
            socket_owner=account.ids if account is not None else None,
        )

    def kubernetes_backend(
        settings: KubePieSettings, registry: CollectorRegistry
    ) -> KubernetesBackend:
        # The router hands <state_dir>/run to its account at start; this backend keeps no
        # sockets there, but the directory must exist as with the local backend.
        run_dir = settings.state_dir / "run"
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return KubernetesBackend(
            settings.backend,
            settings.mount_specs,
            connect(settings.backend.kubernetes.kubeconfig),
            min_uid=settings.identity.min_uid,
            metrics=PrometheusBackendMetrics(registry),
        )

    ui = web_ui(settings)
    try:
        return serve_forever(
            settings,
            kubernetes_backend if settings.backend.kind == "kubernetes" else local_backend,
            log_level=args.log_level,
            web_routes=ui.web_routes,
            error_page=ui.error_page,
            router_account=account,
        )
    except RouterError as exc:  # at start: the accounting file, the drop to router_user
        print(f"kubepie serve: {exc}", file=sys.stderr)
        return 1
