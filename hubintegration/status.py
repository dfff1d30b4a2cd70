"""What the notebook's status bar shows: memory, GPU memory and walltime, used / limit.

"Mem: 450 / 51200 MB | GPU: 1164 / 10201 MB | Walltime: 28 / 30 min" (MB are MiB).

* Memory from the container's cgroup: v2 ``memory.current`` (less ``inactive_file``, the
  working set as the kubelet counts it) and ``memory.max``; v1 ``memory.usage_in_bytes``
  (less ``total_inactive_file``) and ``memory.limit_in_bytes``.
* GPU memory from the GPU node daemon (``gpu/``), when ``KUBEPIE_GPU_DAEMON_SOCKET`` (set by
  the GPU device plugin's Allocate) names its socket: one JSON line ``{"op": "status"}``; the
  daemon identifies the calling pod from the connection itself.
* Walltime from the walltime sidecar's loopback endpoint.

Sources are small injectable readers; :func:`collect` puts them together. The Jupyter server
extension that serves this is :mod:`hubintegration.serverext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

MIB = 1024 * 1024
#: cgroup v1 reports "no limit" as a huge page-aligned number.
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True, slots=True)
class Usage:
    """Used and limit in bytes (or seconds for walltime); ``limit`` ``None``: unlimited."""

    used: int
    limit: int | None


class Reader(Protocol):
    async def read(self) -> Usage | None: ...


def _int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat(path: Path, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    return 0


def read_cgroup_memory(root: Path) -> Usage | None:
    """Working-set memory and limit of the cgroup mounted at ``root`` (v2, else v1)."""
    current = _int(root / "memory.current")
    if current is not None:
        limit_text = ""
        with contextlib.suppress(OSError):
            limit_text = (root / "memory.max").read_text().strip()
        limit = int(limit_text) if limit_text.isdigit() else None
        used = max(0, current - _stat(root / "memory.stat", "inactive_file"))
        return Usage(used, limit)
    v1 = root / "memory"
    usage = _int(v1 / "memory.usage_in_bytes")
    if usage is None:
        return None
    limit = _int(v1 / "memory.limit_in_bytes")
    if limit is not None and limit >= _V1_UNLIMITED:
        limit = None
    used = max(0, usage - _stat(v1 / "memory.stat", "total_inactive_file"))
    return Usage(used, limit)


@dataclass(frozen=True, slots=True)
class CgroupMemory:
    root: Path = Path("/sys/fs/cgroup")

    async def read(self) -> Usage | None:
        return read_cgroup_memory(self.root)


def gpu_usage_from_status(result: Mapping[str, Any]) -> Usage | None:
    """Sum of the caller's containers in the GPU daemon's ``status`` result."""
    containers = result.get("containers") or []
    if not containers:
        return None
    used = sum(int(c.get("used_bytes", 0)) for c in containers)
    limits = [c.get("limit_bytes") for c in containers]
    limit = sum(int(x) for x in limits if x) if all(limits) else None
    return Usage(used, limit)


@dataclass(frozen=True, slots=True)
class GpuDaemon:
    """The GPU node daemon on its unix socket; ``None`` when absent or failing."""

    socket: Path
    timeout_s: float = 2.0

    async def read(self) -> Usage | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_unix_connection(str(self.socket))
                try:
                    writer.write(b'{"op": "status"}\n')
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
            answer = json.loads(line)
        except (OSError, TimeoutError, ValueError):
            return None
        if not isinstance(answer, dict) or not answer.get("ok"):
            return None
        result = answer.get("result")
        return gpu_usage_from_status(result) if isinstance(result, dict) else None


@dataclass(frozen=True, slots=True)
class WalltimeSidecar:
    """The walltime sidecar's countdown: used = elapsed seconds, limit = total seconds."""

    url: str
    http: httpx.AsyncClient

    async def read(self) -> Usage | None:
        try:
            body = (await self.http.get(self.url, timeout=2)).json()
            return Usage(int(body["elapsed_s"]), int(body["total_s"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Sources:
    memory: Reader
    gpu: Reader | None = None
    walltime: Reader | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], http: httpx.AsyncClient) -> Sources:
        root = Path(env.get("KUBEPIE_CGROUP_ROOT") or "/sys/fs/cgroup")
        socket = env.get("KUBEPIE_GPU_DAEMON_SOCKET")
        walltime = env.get("KUBEPIE_WALLTIME_URL")
        return cls(
            memory=CgroupMemory(root),
            gpu=GpuDaemon(Path(socket)) if socket else None,
            walltime=WalltimeSidecar(walltime, http) if walltime else None,
        )


def _mib(value: int | None) -> int | None:
    return None if value is None else round(value / MIB)


def status_line(memory: Usage | None, gpu: Usage | None, walltime: Usage | None) -> str:
    parts = []
    if memory is not None:
        limit = _mib(memory.limit)
        parts.append(f"Mem: {_mib(memory.used)} / {limit if limit is not None else '-'} MB")
    if gpu is not None:
        limit = _mib(gpu.limit)
        parts.append(f"GPU: {_mib(gpu.used)} / {limit if limit is not None else '-'} MB")
    if walltime is not None and walltime.limit:
        parts.append(f"Walltime: {walltime.used // 60} / {round(walltime.limit / 60)} min")
    return " | ".join(parts)


async def _maybe(reader: Reader | None) -> Usage | None:
    return None if reader is None else await reader.read()


def _mb(usage: Usage | None) -> dict[str, int | None] | None:
    if usage is None:
        return None
    return {"used_mb": _mib(usage.used), "limit_mb": _mib(usage.limit)}


async def collect(sources: Sources) -> dict[str, Any]:
    """The JSON body of ``GET /api/kubepie/status``."""
    memory, gpu, walltime = await asyncio.gather(
        _maybe(sources.memory), _maybe(sources.gpu), _maybe(sources.walltime)
    )
    return {
        "memory": _mb(memory),
        "gpu": _mb(gpu),
        "walltime": None
        if walltime is None
        else {"elapsed_s": walltime.used, "total_s": walltime.limit},
        "line": status_line(memory, gpu, walltime),
    }


def sources_from_environment(http: httpx.AsyncClient) -> Sources:
    return Sources.from_env(os.environ, http)
