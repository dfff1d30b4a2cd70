"""What the ``nvidia-smi`` wrapper prints: nvidia-smi's outputs for one container. Pure.

From a daemon status view (:func:`gpu.daemon.status_view`), :func:`container_view` keeps the
calling container's devices and processes; each device's total memory is the container's
limit, split over its devices by their share of its meta-devices, and its used memory is the
container's own. :func:`table` is nvidia-smi's default output, :func:`query` answers
``--query-gpu``/``--query-compute-apps`` with ``--format=csv[,noheader][,nounits]``, and
:func:`as_json` is a KubePie extension (``--json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class SmiDevice:
    index: int
    uuid: str
    name: str
    used_bytes: int
    total_bytes: int
    utilization_gpu: int | None


@dataclass(frozen=True)
class SmiProcess:
    index: int
    gpu_uuid: str
    gpu_instance_id: int | None
    pid: int
    name: str
    used_bytes: int


@dataclass(frozen=True)
class ContainerView:
    who: str
    devices: tuple[SmiDevice, ...]
    processes: tuple[SmiProcess, ...]


def container_view(view: dict[str, Any]) -> ContainerView:
    caller = view.get("caller") or {}
    me = (caller.get("namespace"), caller.get("pod"), caller.get("container"))
    mine = [c for c in view["containers"] if (c["namespace"], c["pod"], c["container"]) == me]
    processes = [p for p in view["processes"] if (p["namespace"], p["pod"], p["container"]) == me]
    shares_on: dict[str, int] = {}
    for c in mine:
        for uuid, n in c["device_shares"].items():
            shares_on[uuid] = shares_on.get(uuid, 0) + n
    total_shares = sum(shares_on.values()) or 1
    limit = sum(int(c["limit_bytes"]) for c in mine)
    used_on: dict[str, int] = {}
    for p in processes:
        used_on[p["device_uuid"]] = used_on.get(p["device_uuid"], 0) + int(p["used_bytes"])
    devices = [d for d in view["devices"] if d["uuid"] in shares_on]
    position = {d["uuid"]: i for i, d in enumerate(devices)}
    return ContainerView(
        who="/".join(str(part) for part in me),
        devices=tuple(
            SmiDevice(
                position[d["uuid"]],
                d["uuid"],
                d["name"],
                used_on.get(d["uuid"], 0),
                limit * shares_on[d["uuid"]] // total_shares,
                d.get("utilization_gpu"),
            )
            for d in devices
        ),
        processes=tuple(
            SmiProcess(
                position.get(p["device_uuid"], -1),
                p["device_uuid"],
                p.get("gpu_instance_id"),
                int(p["pid"]),
                p["name"],
                int(p["used_bytes"]),
            )
            for p in processes
        ),
    )


_WIDE = "+" + "-" * 89 + "+"
_SPLIT = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"


def _row(text: str) -> str:
    return "| " + text.ljust(87)[:87] + " |"


def table(cv: ContainerView, timestamp: str) -> str:
    """nvidia-smi's default output: the device table and the process table."""
    lines = [
        timestamp,
        _WIDE,
        _row(f"NVIDIA-SMI (KubePie view of {cv.who})"),
        _SPLIT,
        "| GPU  Name" + " " * 31 + "|" + "Memory-Usage".rjust(23) + " | GPU-Util" + " " * 13 + "|",
        "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|",
    ]
    for d in cv.devices:
        memory = f"{d.used_bytes // MIB}MiB / {d.total_bytes // MIB}MiB"
        util = "N/A" if d.utilization_gpu is None else f"{d.utilization_gpu}%"
        lines.append(f"| {d.index:>3}  {d.name[:34]:<34} | {memory:>22} | {util:>8}{'':12} |")
    if not cv.devices:
        lines.append(_row("No GPU shares are allocated to this container."))
    lines += [
        _SPLIT,
        "",
        _WIDE,
        _row("Processes:"),
        _row(" GPU   GI   CI        PID   Type   Process name" + " " * 28 + "GPU Memory"),
        _row("       ID   ID" + " " * 61 + "Usage"),
        "|" + "=" * 89 + "|",
    ]
    for p in cv.processes:
        gi = "N/A" if p.gpu_instance_id is None else str(p.gpu_instance_id)
        lines.append(
            _row(
                f"{p.index:>4}  {gi:>4}  N/A  {p.pid:>9}      C   {p.name[:38]:<38}"
                f"{p.used_bytes // MIB:>8}MiB"
            )
        )
    if not cv.processes:
        lines.append(_row(" No running processes found"))
    lines.append(_WIDE)
    return "\n".join(lines) + "\n"


#: ``--query-gpu`` fields: (header, unit, value).
_GPU_FIELDS: dict[str, tuple[str, str, Any]] = {
    "index": ("index", "", lambda d: d.index),
    "name": ("name", "", lambda d: d.name),
    "uuid": ("uuid", "", lambda d: d.uuid),
    "gpu_uuid": ("uuid", "", lambda d: d.uuid),
    "memory.used": ("memory.used", "MiB", lambda d: d.used_bytes // MIB),
    "memory.total": ("memory.total", "MiB", lambda d: d.total_bytes // MIB),
    "memory.free": (
        "memory.free",
        "MiB",
        lambda d: max(d.total_bytes - d.used_bytes, 0) // MIB,
    ),
    "utilization.gpu": ("utilization.gpu", "%", lambda d: d.utilization_gpu),
}
_APP_FIELDS: dict[str, tuple[str, str, Any]] = {
    "pid": ("pid", "", lambda p: p.pid),
    "process_name": ("process_name", "", lambda p: p.name),
    "name": ("process_name", "", lambda p: p.name),
    "gpu_uuid": ("gpu_uuid", "", lambda p: p.gpu_uuid),
    "used_memory": ("used_gpu_memory", "MiB", lambda p: p.used_bytes // MIB),
    "used_gpu_memory": ("used_gpu_memory", "MiB", lambda p: p.used_bytes // MIB),
}


class QueryError(ValueError):
    """An unknown field or format; the message is what nvidia-smi would say."""


def query(cv: ContainerView, kind: str, fields: Sequence[str], fmt: Sequence[str]) -> str:
    """``--query-gpu`` (kind ``gpu``) or ``--query-compute-apps`` (``apps``) as CSV."""
    if not fmt or fmt[0] != "csv" or set(fmt[1:]) - {"noheader", "nounits"}:
        raise QueryError(f'"{",".join(fmt)}" is not a valid format (only csv is supported)')
    table_fields = _GPU_FIELDS if kind == "gpu" else _APP_FIELDS
    unknown = [f for f in fields if f not in table_fields]
    if unknown or not fields:
        raise QueryError(f'Field "{",".join(unknown)}" is not a valid field to query.')
    chosen = [table_fields[f] for f in fields]
    units = "nounits" not in fmt
    lines = []
    if "noheader" not in fmt:
        lines.append(", ".join(f"{h} [{u}]" if u and units else h for h, u, _ in chosen))
    rows: Sequence[Any] = cv.devices if kind == "gpu" else cv.processes
    for row in rows:
        cells = []
        for _, unit, value in chosen:
            v = value(row)
            text = "[N/A]" if v is None else str(v)
            cells.append(f"{text} {unit}" if unit and units and v is not None else text)
        lines.append(", ".join(cells))
    return "".join(line + "\n" for line in lines)


def as_json(cv: ContainerView) -> str:
    data = {
        "container": cv.who,
        "devices": [asdict(d) for d in cv.devices],
        "processes": [asdict(p) for p in cv.processes],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
