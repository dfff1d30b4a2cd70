"""``kubepie demo``: KubePie on one machine, with a dev issuer, demo users and sample data.

Development only: the embedded OpenID provider listens on loopback and its passwords are
printed. As root the demo has users alice, bob and carol whose files the kernel keeps apart;
otherwise it serves only the invoking user (and says so). See :mod:`kubepie.demo`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kubepie.cli.options import add_option

NAME = "demo"
#: The demo's options read KUBEPIE_DEMO_*: plain KUBEPIE_PORT is set by Kubernetes for a
#: Service named kubepie.
ENV_PREFIX = "KUBEPIE_DEMO_"
HELP = "Run everything embedded (dev OIDC issuer, demo users, sample data); not for production."


def default_dir() -> Path:
    """Where the demo keeps its data: a system place as root (demo users must reach it)."""
    if os.geteuid() == 0:
        return Path("/var/tmp/kubepie-demo")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "kubepie-demo"


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser,
        "--dir",
        env_prefix=ENV_PREFIX,
        type=Path,
        metavar="DIR",
        help="sample data, keys, configuration and logs (default: /var/tmp/kubepie-demo as "
        "root, else $XDG_STATE_HOME/kubepie-demo); kept between runs",
    )
    add_option(
        parser,
        "--port",
        env_prefix=ENV_PREFIX,
        type=int,
        metavar="PORT",
        help="router port on 127.0.0.1 (default: 8080, or a free port if it is taken; 0: free)",
    )
    add_option(
        parser,
        "--s3-port",
        env_prefix=ENV_PREFIX,
        type=int,
        metavar="PORT",
        help="S3 port on 127.0.0.1 (default: 9000, or a free port if it is taken; 0: free)",
    )
    add_option(
        parser,
        "--issuer-port",
        env_prefix=ENV_PREFIX,
        type=int,
        metavar="PORT",
        help="dev OIDC issuer port on 127.0.0.1 (default: 8090, or a free port; 0: free)",
    )
    add_option(
        parser,
        "--startup-timeout",
        env_prefix=ENV_PREFIX,
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long the router may take to answer /healthz",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from kubepie.demo.runner import DemoOptions, run_demo

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("kubepie demo: %(message)s"))
    demo_log = logging.getLogger("kubepie.demo")
    demo_log.addHandler(handler)
    demo_log.setLevel(logging.INFO)

    for flag in ("port", "s3_port", "issuer_port"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value <= 65535:
            flag_name = "--" + flag.replace("_", "-")
            print(f"kubepie demo: error: {flag_name} {value} is not a port", file=sys.stderr)
            return 2
    options = DemoOptions(
        base=args.dir or default_dir(),
        port=args.port,
        s3_port=args.s3_port,
        issuer_port=args.issuer_port,
        startup_timeout=args.startup_timeout,
    )
    return run_demo(options)
