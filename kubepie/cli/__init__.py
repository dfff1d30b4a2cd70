"""The ``kubepie`` command line: one sub-command per module in this package.

Each sub-command module exposes ``NAME``, ``HELP``, ``configure(parser)`` and ``run(args)``,
imports only the standard library at module level, and imports its implementation inside
``run`` so that ``kubepie --help`` stays fast and light. Every option also reads a
``KUBEPIE_*`` environment variable (see :func:`kubepie.cli.options.add_option`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from kubepie.cli import credentials, demo, fileserver, nss_sync, operator, serve

#: Sub-commands, in the order ``kubepie --help`` lists them.
COMMANDS: tuple[ModuleType, ...] = (serve, demo, fileserver, nss_sync, credentials, operator)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubepie",
        description="Per-user file servers over POSIX storage, with OIDC and app credentials.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        command_parser = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args._run(args)
    return status
