"""An ``nvidia-smi`` for GPU containers: nvidia-smi's outputs, for the calling container only.

Inside a container's PID namespace the real ``nvidia-smi`` lists no processes, and it shows
the whole GPU's memory rather than what the container may use. Installed as ``nvidia-smi``
ahead of the real one on ``PATH``, this asks the node daemon and prints, for the calling
container only, with its limit as the total memory (see :mod:`gpu.smi`):

* no options: the familiar device and process tables;
* ``-L``: the container's GPUs;
* ``--query-gpu=index,name,uuid,memory.used,memory.total,memory.free,utilization.gpu`` and
  ``--query-compute-apps=pid,process_name,gpu_uuid,used_memory`` with
  ``--format=csv[,noheader][,nounits]``;
* ``--json``: the same data as JSON (a KubePie extension).

Any other option goes to the real binary (``$KUBEPIE_REAL_NVIDIA_SMI``, default
``/usr/bin/nvidia-smi``) when there is one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gpu.client import default_socket, query
from gpu.errors import DaemonError, DaemonUnavailableError
from gpu.smi import ContainerView, QueryError, as_json, container_view, table
from gpu.smi import query as csv_query

REAL_ENV = "KUBEPIE_REAL_NVIDIA_SMI"
PREFIX = "nvidia-smi (KubePie)"


def parse(args: Sequence[str]) -> dict[str, str] | None:
    """Our options as ``{name: value}``; ``None`` when an option is not ours."""
    parsed: dict[str, str] = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        if name in ("-L", "--list-gpus", "--json") and not sep:
            parsed[name.replace("--list-gpus", "-L")] = ""
        elif name in ("--query-gpu", "--query-compute-apps", "--format") and sep:
            parsed[name] = value
        else:
            return None
    return parsed


def render(cv: ContainerView, options: dict[str, str]) -> str:
    if "-L" in options:
        return "".join(f"GPU {d.index}: {d.name} (UUID: {d.uuid})\n" for d in cv.devices)
    if "--json" in options:
        return as_json(cv)
    fmt = options.get("--format", "").split(",")
    if "--query-gpu" in options:
        return csv_query(cv, "gpu", options["--query-gpu"].split(","), fmt)
    if "--query-compute-apps" in options:
        return csv_query(cv, "apps", options["--query-compute-apps"].split(","), fmt)
    return table(cv, time.strftime("%a %b %d %H:%M:%S %Y"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options = parse(args)
    if options is None:
        real = Path(os.environ.get(REAL_ENV, "/usr/bin/nvidia-smi"))
        if real.exists() and real.resolve() != Path(sys.argv[0]).resolve():
            os.execv(real, [str(real), *args])  # noqa: S606 - the administrator's nvidia-smi
        print(f"{PREFIX}: unsupported options {' '.join(args)}", file=sys.stderr)
        return 2
    try:
        view = asyncio.run(query(default_socket(), {"op": "status"}))
    except DaemonUnavailableError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return 9  # what nvidia-smi answers when it cannot reach the driver
    except DaemonError as exc:
        print(f"{PREFIX}: refused: {exc}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(render(container_view(view), options))
    except QueryError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
