"""The node daemon API: what ``mgctl`` and the ``nvidia-smi`` wrapper ask, scoped to the caller.

Transport and identity. The daemon listens on a unix socket whose directory the device plugin
mounts (read-only) into every GPU container. The caller is identified from the connection,
never from anything it sends: ``SO_PEERCRED`` gives the peer's PID as the kernel sees it (in
the daemon's PID namespace, the host's, since the agent runs with ``hostPID``), the PID's
cgroup names the pod UID and container ID (:mod:`gpu.cgroups`), and the monitor maps the pod
UID to the pod. A process cannot choose its cgroup or its PID, so it cannot speak for another
pod. TCP with peer IP → pod was rejected: pods with ``hostNetwork`` share the node's address,
and it would need a pod IP index from the API server. The design is testable with real
sockets: the tests connect from real processes and point the cgroup reader at a prepared
``/proc`` tree.

The PID is read when the connection is accepted; a caller would have to exit and have its PID
reused by another pod's process within that instant to be mistaken for it.

Scope. A caller in a pod gets its own pod only: asking about another pod is refused (403).
Node-wide views (and other pods) need the admin credential in the request's ``token`` field,
compared in constant time with the content of the configured file; without such a file there
are no node-wide views at all. A caller that maps to no pod and has no credential gets 401.

Protocol: one JSON object per line, one request per connection::

    {"op": "status"}                                   the caller's pod
    {"op": "status", "namespace": "ns", "pod": "name"} a pod: the caller's own, or admin
    {"op": "status", "node": true, "token": "..."}     everything on the node (admin)

answered by ``{"ok": true, "result": {...}}`` or ``{"ok": false, "status": 403, "error": "..."}``.
The result is :func:`status_view`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu.cgroups import ContainerResolver
from gpu.errors import (
    CallerUnknownError,
    DaemonError,
    ForbiddenError,
    GpuError,
    UnknownDeviceError,
)
from gpu.metadevices import parse_id
from gpu.models import ContainerShares, Snapshot
from gpu.monitor import Monitor
from gpu.workloads import PodInfo

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
_PEERCRED = struct.Struct("3i")


@dataclass(frozen=True)
class Caller:
    pid: int
    pod: PodInfo | None
    container: str | None
    admin: bool


def peer_pid(sock: socket.socket) -> int:
    """The connecting process's PID, from the kernel (``SO_PEERCRED``)."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, _uid, _gid = _PEERCRED.unpack(data)
    return int(pid)


def read_admin_token(path: Path | None) -> bytes | None:
    """The admin credential, stripped; ``None`` (node-wide views off) without a file."""
    if path is None:
        return None
    token = path.read_bytes().strip()
    if not token:
        raise GpuError(f"admin credential file {path} is empty")
    return token


def _uuid_of(device_id: str) -> str:
    try:
        return parse_id(device_id).uuid
    except UnknownDeviceError:
        return device_id


def is_admin(presented: object, expected: bytes | None) -> bool:
    if expected is None or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected)


def status_view(
    snapshot: Snapshot,
    shares: Mapping[tuple[str, str], ContainerShares],
    select: Callable[[ContainerShares], bool],
    *,
    node: bool,
    process_name: Callable[[int], str],
) -> dict[str, Any]:
    """Devices, containers and processes visible to a caller (pure but for ``process_name``).

    ``select`` chooses the containers shown; processes of unknown containers and devices held
    by nobody are shown in node views only.
    """
    chosen = [s for s in shares.values() if select(s)]
    used: dict[tuple[str, str], int] = {}
    held: dict[tuple[str, str], set[str]] = {}
    for usage in snapshot.usage:
        key = (usage.shares.pod_uid, usage.shares.container_id)
        used[key] = used.get(key, 0) + usage.used
    for s in chosen:
        held[(s.pod_uid, s.container_id)] = {
            _uuid_of(text) for ids in s.device_ids.values() for text in ids
        }
    visible_devices = set().union(*held.values()) if held else set()
    memory = {(p.pid, p.device_uuid): p for p in snapshot.processes}
    processes: list[dict[str, Any]] = []
    for usage in snapshot.usage:
        if not select(usage.shares):
            continue
        ref = usage.shares.ref
        for pid in usage.pids:
            process = memory.get((pid, usage.device_uuid))
            processes.append(
                {
                    "pid": pid,
                    "name": process_name(pid),
                    "namespace": ref.namespace,
                    "pod": ref.pod,
                    "container": ref.container,
                    "device_uuid": usage.device_uuid,
                    "gpu_instance_id": usage.gpu_instance_id,
                    "used_bytes": process.used_memory if process else 0,
                }
            )
    if node:
        for process in snapshot.unattributed:
            processes.append(
                {
                    "pid": process.pid,
                    "name": process_name(process.pid),
                    "namespace": "",
                    "pod": "",
                    "container": "",
                    "device_uuid": process.device_uuid,
                    "gpu_instance_id": process.gpu_instance_id,
                    "used_bytes": process.used_memory,
                }
            )
    devices = [
        {
            "index": d.index,
            "uuid": d.uuid,
            "name": d.name,
            "parent_uuid": d.parent_uuid,
            "gpu_instance_id": d.gpu_instance_id,
            "memory_total_bytes": d.memory_total,
            "memory_used_bytes": d.memory_used,
            "utilization_gpu": d.utilization_gpu,
            "healthy": d.healthy,
        }
        for d in snapshot.devices
        if node or d.uuid in visible_devices
    ]
    containers = [
        {
            "namespace": s.ref.namespace,
            "pod": s.ref.pod,
            "container": s.ref.container,
            "shares": sum(len(ids) for ids in s.device_ids.values()),
            "guarantee_bytes": s.guarantee,
            "limit_bytes": s.limit,
            "used_bytes": used.get((s.pod_uid, s.container_id), 0),
            "devices": sorted(held[(s.pod_uid, s.container_id)]),
            "device_shares": _shares_per_device(s),
        }
        for s in chosen
    ]
    order = ("namespace", "pod", "container")
    containers.sort(key=lambda c: tuple(str(c[k]) for k in order))
    processes.sort(key=lambda p: (str(p["namespace"]), str(p["pod"]), int(p["pid"])))
    return {"node": node, "devices": devices, "containers": containers, "processes": processes}


def _replace_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _shares_per_device(shares: ContainerShares) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ids in shares.device_ids.values():
        for text in ids:
            uuid = _uuid_of(text)
            counts[uuid] = counts.get(uuid, 0) + 1
    return counts


class Daemon:
    """Answers API requests from the monitor's view, scoped to the identified caller."""

    def __init__(
        self,
        monitor: Monitor,
        resolver: ContainerResolver,
        *,
        admin_token: bytes | None,
        proc_root: Path = Path("/proc"),
    ) -> None:
        self.monitor = monitor
        self.resolver = resolver
        self.admin_token = admin_token
        self.proc_root = proc_root

    def process_name(self, pid: int) -> str:
        try:
            return (self.proc_root / str(pid) / "comm").read_text().strip()
        except OSError:
            return ""

    async def identify(self, pid: int, request: Mapping[str, Any]) -> Caller:
        admin = is_admin(request.get("token"), self.admin_token)
        container = self.resolver.container_of(pid)
        if container is None:
            return Caller(pid, None, None, admin)
        pod = self.monitor.pod(container.pod_uid)
        if pod is None:  # a pod newer than the last refresh
            await self.monitor.refresh()
            pod = self.monitor.pod(container.pod_uid)
        name = None
        if pod is not None:
            name = next(
                (n for cid, n in pod.containers.items() if cid.endswith(container.container_id)),
                None,
            )
        return Caller(pid, pod, name, admin)

    async def answer(self, pid: int, request: Mapping[str, Any]) -> dict[str, Any]:
        """The result for ``request`` from the process ``pid``; raises :class:`DaemonError`."""
        if request.get("op") != "status":
            raise DaemonError(f"unknown op {request.get('op')!r}")
        caller = await self.identify(pid, request)
        node = bool(request.get("node"))
        namespace, pod_name = request.get("namespace"), request.get("pod")
        if not node and (namespace is None) != (pod_name is None):
            raise DaemonError("give both namespace and pod, or neither")
        if caller.pod is None and not caller.admin:
            raise CallerUnknownError("this connection comes from no pod on this node")
        if caller.pod is None and not node and namespace is None:
            raise DaemonError("outside a pod, name a pod or ask for the node view")
        if node and not caller.admin:
            raise ForbiddenError("node-wide views need the admin credential")
        if namespace is not None and not caller.admin:
            own = caller.pod
            if own is None or (own.namespace, own.name) != (namespace, pod_name):
                raise ForbiddenError("a container may only ask about its own pod")
        if node:

            def select(s: ContainerShares) -> bool:
                return True
        elif namespace is not None:

            def select(s: ContainerShares) -> bool:
                return (s.ref.namespace, s.ref.pod) == (namespace, pod_name)
        else:
            own_uid = caller.pod.uid if caller.pod is not None else ""

            def select(s: ContainerShares) -> bool:
                return s.pod_uid == own_uid

        snapshot = self.monitor.snapshot()
        view = status_view(
            snapshot, self.monitor.shares, select, node=node, process_name=self.process_name
        )
        view["caller"] = (
            None
            if caller.pod is None
            else {
                "namespace": caller.pod.namespace,
                "pod": caller.pod.name,
                "container": caller.container,
            }
        )
        return view

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            pid = peer_pid(writer.get_extra_info("socket"))
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=10)
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise DaemonError("the request must be a JSON object")
                reply: dict[str, Any] = {"ok": True, "result": await self.answer(pid, request)}
            except (ValueError, asyncio.LimitOverrunError) as exc:
                reply = {"ok": False, "status": 400, "error": f"bad request: {exc}"}
            except DaemonError as exc:
                reply = {"ok": False, "status": exc.status, "error": str(exc)}
            except GpuError as exc:
                log.warning("daemon request from pid %s failed: %s", pid, exc)
                reply = {"ok": False, "status": 503, "error": str(exc)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def serve(self, path: Path) -> asyncio.Server:
        """Listen on ``path`` (replacing a stale socket); any local user may connect."""
        _replace_socket(path)
        server = await asyncio.start_unix_server(self.handle, path, limit=MAX_REQUEST_BYTES)
        os.chmod(path, 0o666)  # noqa: S103 - identity comes from SO_PEERCRED, not file modes
        return server
