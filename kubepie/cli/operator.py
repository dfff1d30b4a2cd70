"""``kubepie operator --config FILE``: the FileServer operator (PieDeck, PieEat), the admission
webhook (PieSec) and the NSS sync, for Kubernetes (see :mod:`kubepie.operator`)."""

from __future__ import annotations

import argparse
import sys

from kubepie.cli.options import add_option

NAME = "operator"
HELP = "Run the Kubernetes operator: FileServer Pods, reaper, admission webhook, NSS sync."


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser, "--config", required=True, metavar="FILE", help="the operator's YAML settings"
    )
    add_option(
        parser,
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from kubepie.kube.errors import KubeError
    from kubepie.operator.app import serve
    from kubepie.operator.errors import OperatorError
    from kubepie.operator.settings import load_operator_settings

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        settings = load_operator_settings(args.config)
        asyncio.run(serve(settings))
    except (OperatorError, KubeError) as exc:
        print(f"kubepie operator: {exc}", file=sys.stderr)
        return 2
    return 0
