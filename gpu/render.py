"""Text renderings of a daemon status view: ``mgctl`` tables and the nvidia-smi look-alike.

Pure functions from the JSON-shaped view (:func:`gpu.daemon.status_view`) to text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

MIB = 1024 * 1024


def _mib(value: Any) -> int:
    return int(value or 0) // MIB


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns left-aligned, two spaces apart, like kubectl."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


def devices_table(view: dict[str, Any]) -> str:
    rows = [
        [
            d["index"],
            d["uuid"],
            d["name"],
            "" if d.get("gpu_instance_id") is None else d["gpu_instance_id"],
            _mib(d["memory_used_bytes"]),
            _mib(d["memory_total_bytes"]),
            "" if d.get("utilization_gpu") is None else f"{d['utilization_gpu']}%",
            "yes" if d["healthy"] else "NO",
        ]
        for d in view["devices"]
    ]
    headers = ["IDX", "UUID", "MODEL", "GI", "USED MiB", "TOTAL MiB", "UTIL", "HEALTHY"]
    return table(headers, rows)


def processes_table(view: dict[str, Any]) -> str:
    containers = [
        [
            c["namespace"],
            c["pod"],
            c["container"],
            c["shares"],
            _mib(c["used_bytes"]),
            _mib(c["guarantee_bytes"]),
            _mib(c["limit_bytes"]),
        ]
        for c in view["containers"]
    ]
    processes = [
        [
            p["namespace"] or "-",
            p["pod"] or "-",
            p["container"] or "-",
            p["pid"],
            p["name"],
            p["device_uuid"],
            "" if p.get("gpu_instance_id") is None else p["gpu_instance_id"],
            _mib(p["used_bytes"]),
        ]
        for p in view["processes"]
    ]
    first = table(
        ["NAMESPACE", "POD", "CONTAINER", "SHARES", "USED MiB", "REQUEST MiB", "LIMIT MiB"],
        containers,
    )
    second = table(
        ["NAMESPACE", "POD", "CONTAINER", "PID", "NAME", "DEVICE", "GI", "USED MiB"], processes
    )
    return first + "\n" + second


def as_json(view: dict[str, Any], *keys: str) -> str:
    return json.dumps({k: view[k] for k in keys}, indent=2, sort_keys=True) + "\n"


# -- nvidia-smi look-alike ---------------------------------------------------------------

_WIDE = "+" + "-" * 89 + "+"
_SPLIT = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"


def _row(text: str) -> str:
    return "| " + text.ljust(87)[:87] + " |"


def nvidia_smi(view: dict[str, Any], timestamp: str) -> str:
    """nvidia-smi's device and process tables for the calling container only.

    Each device's total is the container's limit (split over its devices by their share of
    its meta-devices) and its usage is the container's own; the processes are its own.
    """
    caller = view.get("caller") or {}
    mine = [
        c
        for c in view["containers"]
        if (c["namespace"], c["pod"], c["container"])
        == (caller.get("namespace"), caller.get("pod"), caller.get("container"))
    ]
    processes = [
        p
        for p in view["processes"]
        if (p["namespace"], p["pod"], p["container"])
        == (caller.get("namespace"), caller.get("pod"), caller.get("container"))
    ]
    total_shares = sum(sum(c["device_shares"].values()) for c in mine) or 1
    limit = sum(int(c["limit_bytes"]) for c in mine)
    shares_on: dict[str, int] = {}
    for c in mine:
        for uuid, n in c["device_shares"].items():
            shares_on[uuid] = shares_on.get(uuid, 0) + n
    used_on: dict[str, int] = {}
    for p in processes:
        used_on[p["device_uuid"]] = used_on.get(p["device_uuid"], 0) + int(p["used_bytes"])
    devices = [d for d in view["devices"] if d["uuid"] in shares_on]
    position = {d["uuid"]: i for i, d in enumerate(devices)}

    who = f"{caller.get('namespace')}/{caller.get('pod')}/{caller.get('container')}"
    lines = [
        timestamp,
        _WIDE,
        _row(f"NVIDIA-SMI (KubePie view of {who})"),
        _SPLIT,
        "| GPU  Name" + " " * 31 + "|" + "Memory-Usage".rjust(23) + " | GPU-Util" + " " * 13 + "|",
        "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|",
    ]
    for d in devices:
        total = limit * shares_on[d["uuid"]] // total_shares
        memory = f"{_mib(used_on.get(d['uuid'], 0))}MiB / {_mib(total)}MiB"
        util = "N/A" if d.get("utilization_gpu") is None else f"{d['utilization_gpu']}%"
        name = d["name"][:34]
        lines.append(f"| {position[d['uuid']]:>3}  {name:<34} | {memory:>22} | {util:>8}{'':12} |")
    if not devices:
        lines.append(_row("No GPU shares are allocated to this container."))
    lines += [
        _SPLIT,
        "",
        _WIDE,
        _row("Processes:"),
        _row(
            " GPU   GI   CI        PID   Type   Process name                            GPU Memory"
        ),
        _row("       ID   ID                                                             Usage"),
        "|" + "=" * 89 + "|",
    ]
    for p in processes:
        gi = "N/A" if p.get("gpu_instance_id") is None else str(p["gpu_instance_id"])
        idx = position.get(p["device_uuid"], "?")
        text = (
            f"{idx:>4}  {gi:>4}  N/A  {p['pid']:>9}      C   {p['name'][:38]:<38}"
            f"{_mib(p['used_bytes']):>8}MiB"
        )
        lines.append(_row(text))
    if not processes:
        lines.append(_row(" No running processes found"))
    lines.append(_WIDE)
    return "\n".join(lines) + "\n"
