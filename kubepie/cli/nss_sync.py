"""``kubepie nss-sync``: render passwd and group files from the directory (in progress)."""

from __future__ import annotations

import argparse

NAME = "nss-sync"
HELP = "Write passwd and group files rendered from the user directory."


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise SystemExit("kubepie nss-sync: not implemented yet")
