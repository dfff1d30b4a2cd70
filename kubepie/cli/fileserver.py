"""``kubepie fileserver``: the per-user WebDAV / HTTPS / S3 server.

Backend mode (the default; started by a backend): the identity, mounts and per-server secret
come as JSON on stdin (or ``--backend-config FILE``); started as root, the process drops to the
identity before it opens any user path. ``--standalone``: serve your own directories with
``--root NAME=PATH`` and credentials from ``KUBEPIE_ACCESS_KEY`` / ``KUBEPIE_SECRET_KEY``.
"""

from __future__ import annotations

import argparse
import os
import sys

from kubepie.cli.options import add_option

NAME = "fileserver"
HELP = "Serve one user's storage mounts over WebDAV, HTTPS and S3."


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser,
        "--standalone",
        action="store_true",
        help="serve your own files (as yourself, never root) with Basic/SigV4 credentials "
        "from KUBEPIE_ACCESS_KEY and KUBEPIE_SECRET_KEY",
    )
    add_option(
        parser,
        "--root",
        action="append",
        default=[],
        metavar="NAME=PATH[:ro]",
        help="standalone: a mount (repeatable); ':ro' makes it read-only",
    )
    add_option(
        parser,
        "--listen",
        required=True,
        metavar="ADDR",
        help="WebDAV/HTTPS listener: HOST:PORT or unix:/PATH (socket mode 0600)",
    )
    add_option(parser, "--s3-listen", metavar="ADDR", help="S3 listener: HOST:PORT or unix:/PATH")
    add_option(
        parser,
        "--state-dir",
        metavar="DIR",
        help="where WebDAV locks persist (default: $XDG_STATE_HOME/kubepie/fileserver)",
    )
    add_option(parser, "--tls-cert", metavar="PEM", help="standalone: serve HTTPS with this chain")
    add_option(parser, "--tls-key", metavar="PEM", help="standalone: the private key of --tls-cert")
    add_option(
        parser,
        "--memory-limit-mb",
        metavar="MIB",
        help="ceiling of the server's data memory (RLIMIT_DATA), set before serving; "
        "512 and up (default: the inherited limit)",
    )
    add_option(
        parser,
        "--backend-config",
        default="-",
        metavar="FILE",
        help="backend mode: JSON with identity, mounts and secret, read to EOF ('-' = stdin)",
    )


def run(args: argparse.Namespace) -> int:
    # Everything is imported here, before any privilege drop (see kubepie.fileserver.server).
    import logging

    from kubepie.fileserver import launch, server
    from kubepie.fileserver.errors import FileServerError
    from kubepie.fileserver.settings import SettingsError

    logging.basicConfig(level=logging.INFO, format="kubepie fileserver: %(message)s")
    try:
        if args.standalone:
            settings = launch.standalone_settings(
                roots=args.root,
                listen=args.listen,
                s3_listen=args.s3_listen,
                state_dir=args.state_dir,
                environ=os.environ,
                euid=os.geteuid(),
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                memory_limit_mb=args.memory_limit_mb,
            )
        elif args.tls_cert or args.tls_key:
            raise SettingsError(
                "--tls-cert/--tls-key: only with --standalone (the router does TLS)"
            )
        elif args.backend_config == "-":
            settings = launch.read_backend_settings(
                sys.stdin,
                listen=args.listen,
                s3_listen=args.s3_listen,
                state_dir=args.state_dir,
                environ=os.environ,
                memory_limit_mb=args.memory_limit_mb,
            )
        else:
            with open(args.backend_config, encoding="utf-8") as stream:
                settings = launch.read_backend_settings(
                    stream,
                    listen=args.listen,
                    s3_listen=args.s3_listen,
                    state_dir=args.state_dir,
                    environ=os.environ,
                    memory_limit_mb=args.memory_limit_mb,
                )
        server.run(settings, launch.make_s3_app)
    except (SettingsError, FileServerError, OSError) as exc:
        print(f"kubepie fileserver: error: {exc}", file=sys.stderr)
        return 2
    return 0
