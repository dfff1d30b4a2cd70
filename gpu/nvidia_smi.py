"""An ``nvidia-smi`` for GPU containers: nvidia-smi's tables, for the calling container only.

Inside a container's PID namespace the real ``nvidia-smi`` lists no processes, and it shows
the whole GPU's memory rather than what the container may use. Installed as ``nvidia-smi``
ahead of the real one on ``PATH``, this asks the node daemon and prints the familiar tables
with the container's limit as the total memory and only its own processes. ``-L`` lists the
container's GPUs. Any other option is passed to the real binary (``$KUBEPIE_REAL_NVIDIA_SMI``,
default ``/usr/bin/nvidia-smi``) when there is one.
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
from gpu.render import nvidia_smi

REAL_ENV = "KUBEPIE_REAL_NVIDIA_SMI"


def list_gpus(view: dict[str, object]) -> str:
    devices = view["devices"]
    assert isinstance(devices, list)
    return "".join(f"GPU {i}: {d['name']} (UUID: {d['uuid']})\n" for i, d in enumerate(devices))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args != ["-L"]:
        real = Path(os.environ.get(REAL_ENV, "/usr/bin/nvidia-smi"))
        if real.exists() and real.resolve() != Path(sys.argv[0]).resolve():
            os.execv(real, [str(real), *args])  # noqa: S606 - the administrator's nvidia-smi
        print(f"nvidia-smi (KubePie): unsupported options {' '.join(args)}", file=sys.stderr)
        return 2
    try:
        view = asyncio.run(query(default_socket(), {"op": "status"}))
    except DaemonUnavailableError as exc:
        print(f"nvidia-smi (KubePie): {exc}", file=sys.stderr)
        return 9  # what nvidia-smi answers when it cannot reach the driver
    except DaemonError as exc:
        print(f"nvidia-smi (KubePie): refused: {exc}", file=sys.stderr)
        return 1
    if args == ["-L"]:
        sys.stdout.write(list_gpus(view))
    else:
        sys.stdout.write(nvidia_smi(view, time.strftime("%a %b %d %H:%M:%S %Y")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
