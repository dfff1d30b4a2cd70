"""Text renderings of a daemon status view for ``mgctl``: tables and JSON.

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
