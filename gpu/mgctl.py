"""``mgctl``: GPU devices and processes as the node daemon shows them to the caller.

::

    mgctl devices [-o table|json]
    mgctl processes [-o table|json] [--watch [--interval S]]
    mgctl --node --token-file /etc/kubepie-gpu/admin-token processes     # node-wide (admin)
    mgctl --pod team-a/notebook processes                                 # own pod, or admin

Inside a GPU container the daemon socket is found through ``$KUBEPIE_GPU_DAEMON_SOCKET``. The
answer is scoped by the daemon to the caller's pod; nothing here can widen it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpu.client import default_socket, query, read_token
from gpu.errors import DaemonError, DaemonUnavailableError
from gpu.render import as_json, devices_table, processes_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mgctl", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, default=None, help="node daemon socket")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--node", action="store_true", help="everything on the node (admin)")
    scope.add_argument("--pod", metavar="NAMESPACE/NAME", help="one pod: your own, or admin")
    parser.add_argument("--token-file", type=Path, help="file with the admin credential")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="GPUs and MIG instances visible to you")
    processes = sub.add_parser("processes", help="containers and their GPU processes")
    processes.add_argument("--watch", action="store_true", help="refresh until interrupted")
    processes.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    return parser


def request_for(args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {"op": "status"}
    if args.node:
        request["node"] = True
    if args.pod:
        namespace, sep, name = args.pod.partition("/")
        if not (sep and namespace and name):
            raise SystemExit("mgctl: --pod takes NAMESPACE/NAME")
        request.update(namespace=namespace, pod=name)
    token = read_token(args.token_file)
    if token:
        request["token"] = token
    return request


def render(args: argparse.Namespace, view: dict[str, Any]) -> str:
    if args.command == "devices":
        return as_json(view, "devices") if args.output == "json" else devices_table(view)
    if args.output == "json":
        return as_json(view, "containers", "processes")
    return processes_table(view)


async def run(args: argparse.Namespace) -> int:
    socket_path = args.socket or default_socket()
    request = request_for(args)
    while True:
        view = await query(socket_path, request)
        sys.stdout.write(render(args, view))
        sys.stdout.flush()
        if not getattr(args, "watch", False):
            return 0
        await asyncio.sleep(args.interval)
        sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except DaemonUnavailableError as exc:
        print(f"mgctl: {exc}", file=sys.stderr)
        return 2
    except DaemonError as exc:
        print(f"mgctl: refused ({exc.status}): {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
