"""Options that also read ``KUBEPIE_*`` environment variables.

``--idle-timeout`` reads ``KUBEPIE_IDLE_TIMEOUT``; a flag given on the command line wins over
the environment. Repeatable options read a comma-separated environment value.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def env_name(flag: str, prefix: str = "KUBEPIE_") -> str:
    """``--s3-listen`` → ``KUBEPIE_S3_LISTEN``."""
    return prefix + flag.lstrip("-").replace("-", "_").upper()


def add_option(
    parser: argparse.ArgumentParser, flag: str, *, env_prefix: str = "KUBEPIE_", **kwargs: Any
) -> None:
    """``parser.add_argument(flag, ...)`` whose default comes from the flag's environment variable.

    A ``required=True`` option is satisfied by its environment variable as well. A sub-command
    whose flags could collide with variables others set passes its own ``env_prefix`` (Kubernetes
    sets ``KUBEPIE_PORT`` in every pod of a namespace with a Service named ``kubepie``).
    """
    name = env_name(flag, env_prefix)
    raw = os.environ.get(name)
    help_text = kwargs.pop("help", "")
    kwargs["help"] = f"{help_text} [env: {name}]".strip()
    if raw is not None:
        action = kwargs.get("action")
        if action == "append":
            kwargs["default"] = [item for item in raw.split(",") if item]
        elif action == "store_true":
            kwargs["default"] = raw.strip().lower() in {"1", "true", "yes", "on"}
        else:
            convert = kwargs.get("type", str)
            try:
                kwargs["default"] = convert(raw)
            except (TypeError, ValueError) as exc:
                raise SystemExit(f"kubepie: error: {name}={raw!r}: {exc}") from exc
        kwargs["required"] = False
    parser.add_argument(flag, **kwargs)
