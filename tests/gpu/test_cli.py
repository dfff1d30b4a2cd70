"""``mgctl`` and the ``nvidia-smi`` wrapper as real processes talking to the real daemon.

Each command starts under ``sh`` waiting on stdin; once its PID is known the test places that
PID in a pod's cgroup (in the daemon's prepared /proc) and lets it ``exec`` the command, which
keeps the PID. The daemon identifies the process by that PID alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gpu.conftest import BIG_PID, SMALL_PID, SYSTEM_PID, Node
from tests.gpu.fakes import H100

GATED = 'read go; exec "$0" "$@"'


@dataclass
class Result:
    rc: int
    out: str
    err: str


async def run_as(
    node: Node, pod: str | None, module: str, *args: str, socket: Path | None = None
) -> Result:
    env = dict(os.environ, KUBEPIE_GPU_DAEMON_SOCKET=str(socket or node.socket))
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", GATED, sys.executable, "-m", module, *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    node.place(proc.pid, pod)
    out, err = await asyncio.wait_for(proc.communicate(b"go\n"), 30)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def test_mgctl_processes_table(node: Node) -> None:
    result = await run_as(node, "big", "gpu.mgctl", "processes")
    assert result.rc == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "NAMESPACE", "POD", "CONTAINER", "SHARES", "USED", "MiB", "REQUEST", "MiB", "LIMIT", "MiB"
    ]  # fmt: skip
    assert lines[1].split() == ["team-a", "big", "main", "1", "1000", "20480", "40960"]
    assert lines[2] == ""
    assert lines[3].split()[:4] == ["NAMESPACE", "POD", "CONTAINER", "PID"]
    assert lines[4].split() == ["team-a", "big", "main", str(BIG_PID), "big-worker", H100, "1000"]
    assert len(lines) == 5
    assert "small" not in result.out


async def test_mgctl_processes_json(node: Node) -> None:
    result = await run_as(node, "small", "gpu.mgctl", "-o", "json", "processes")
    assert result.rc == 0, result.err
    data = json.loads(result.out)
    assert set(data) == {"containers", "processes"}
    assert [(c["pod"], c["limit_bytes"]) for c in data["containers"]] == [("small", 20480 * 2**20)]
    assert [(p["pid"], p["used_bytes"]) for p in data["processes"]] == [(SMALL_PID, 500 * 2**20)]


async def test_mgctl_devices_table_and_json(node: Node) -> None:
    table = await run_as(node, "big", "gpu.mgctl", "devices")
    assert table.rc == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split() == [
        "IDX",
        "UUID",
        "MODEL",
        "GI",
        "USED",
        "MiB",
        "TOTAL",
        "MiB",
        "UTIL",
        "HEALTHY",
    ]
    assert lines[1].split() == [
        "0",
        H100,
        "NVIDIA",
        "H100",
        "80GB",
        "HBM3",
        "2048",
        "81920",
        "37%",
        "yes",
    ]
    assert len(lines) == 2
    as_json = await run_as(node, "big", "gpu.mgctl", "devices", "-o", "json")
    assert as_json.rc == 2  # -o belongs before the sub-command
    as_json = await run_as(node, "big", "gpu.mgctl", "-o", "json", "devices")
    devices = json.loads(as_json.out)["devices"]
    assert [(d["uuid"], d["memory_total_bytes"]) for d in devices] == [(H100, 81920 * 2**20)]


async def test_mgctl_refusals_and_admin_view(node: Node) -> None:
    refused = await run_as(node, "small", "gpu.mgctl", "--pod", "team-a/big", "processes")
    assert refused.rc == 1
    assert "refused (403)" in refused.err
    assert refused.out == ""
    stranger = await run_as(node, None, "gpu.mgctl", "processes")
    assert stranger.rc == 1
    assert "refused (401)" in stranger.err
    admin = await run_as(
        node, None, "gpu.mgctl", "--node", "--token-file", str(node.token_file), "processes"
    )
    assert admin.rc == 0, admin.err
    rows = [line.split() for line in admin.out.splitlines()]
    pids = {row[3]: row[1] for row in rows if len(row) == 7 and row[5] == H100}
    assert pids == {str(BIG_PID): "big", str(SMALL_PID): "small", str(SYSTEM_PID): "-"}


async def test_mgctl_without_a_daemon(node: Node, tmp_path: Path) -> None:
    result = await run_as(node, "big", "gpu.mgctl", "devices", socket=tmp_path / "none.sock")
    assert result.rc == 2
    assert "cannot reach the GPU daemon" in result.err


async def test_mgctl_watch_refreshes(node: Node) -> None:
    env = dict(os.environ, KUBEPIE_GPU_DAEMON_SOCKET=str(node.socket))
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", GATED, sys.executable, "-m", "gpu.mgctl", "processes", "--watch",
        "--interval", "0.1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    node.place(proc.pid, "big")
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    headers = 0
    async with asyncio.timeout(30):
        while headers < 3:
            line = await proc.stdout.readline()
            headers += line.startswith(b"NAMESPACE  POD  CONTAINER  SHARES")
    proc.terminate()
    await proc.wait()
    assert headers == 3


async def test_nvidia_smi_wrapper_shows_the_container_and_its_limit(node: Node) -> None:
    result = await run_as(node, "big", "gpu.nvidia_smi")
    assert result.rc == 0, result.err
    out = result.out
    assert "NVIDIA-SMI (KubePie view of team-a/big/main)" in out
    device_rows = [line for line in out.splitlines() if "NVIDIA H100 80GB HBM3" in line]
    assert len(device_rows) == 1
    assert "1000MiB / 40960MiB" in device_rows[0]
    assert "37%" in device_rows[0]
    process_rows = [line for line in out.splitlines() if str(BIG_PID) in line]
    assert len(process_rows) == 1
    assert process_rows[0].split()[1:] == [
        "0",
        "N/A",
        "N/A",
        str(BIG_PID),
        "C",
        "big-worker",
        "1000MiB",
        "|",
    ]
    assert str(SMALL_PID) not in out
    assert str(SYSTEM_PID) not in out
    assert all(len(line) == 91 for line in out.splitlines()[1:] if line)

    listing = await run_as(node, "big", "gpu.nvidia_smi", "-L")
    assert listing.out == f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {H100})\n"


async def test_nvidia_smi_wrapper_outside_a_pod(node: Node) -> None:
    result = await run_as(node, None, "gpu.nvidia_smi")
    assert result.rc == 1
    assert "refused" in result.err


async def test_nvidia_smi_wrapper_csv_queries(node: Node) -> None:
    gpu = await run_as(
        node, "big", "gpu.nvidia_smi",
        "--query-gpu=index,name,memory.used,memory.total,memory.free,utilization.gpu",
        "--format=csv",
    )  # fmt: skip
    assert gpu.rc == 0, gpu.err
    assert gpu.out == (
        "index, name, memory.used [MiB], memory.total [MiB], memory.free [MiB], "
        "utilization.gpu [%]\n"
        "0, NVIDIA H100 80GB HBM3, 1000 MiB, 40960 MiB, 39960 MiB, 37 %\n"
    )
    bare = await run_as(
        node, "small", "gpu.nvidia_smi", "--query-gpu=memory.used,memory.total",
        "--format=csv,noheader,nounits",
    )  # fmt: skip
    assert bare.out == "500, 20480\n"
    apps = await run_as(
        node, "big", "gpu.nvidia_smi", "--query-compute-apps=pid,process_name,used_memory",
        "--format=csv,noheader",
    )  # fmt: skip
    assert apps.out == f"{BIG_PID}, big-worker, 1000 MiB\n"
    wrong = await run_as(node, "big", "gpu.nvidia_smi", "--query-gpu=power.draw", "--format=csv")
    assert wrong.rc == 2
    assert "not a valid field" in wrong.err


async def test_nvidia_smi_wrapper_json(node: Node) -> None:
    result = await run_as(node, "small", "gpu.nvidia_smi", "--json")
    assert result.rc == 0, result.err
    data = json.loads(result.out)
    assert data["container"] == "team-b/small/main"
    assert [(d["uuid"], d["used_bytes"], d["total_bytes"]) for d in data["devices"]] == [
        (H100, 500 * 2**20, 20480 * 2**20)
    ]
    assert [(p["pid"], p["name"]) for p in data["processes"]] == [(SMALL_PID, "small-worker")]


async def test_nvidia_smi_wrapper_hands_other_options_to_the_real_one(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "nvidia-smi"
    real.write_text('#!/bin/sh\necho "real nvidia-smi $*"\n')
    real.chmod(0o755)
    monkeypatch.setenv("KUBEPIE_REAL_NVIDIA_SMI", str(real))
    result = await run_as(node, "big", "gpu.nvidia_smi", "-q", "-x")
    assert (result.rc, result.out) == (0, "real nvidia-smi -q -x\n")
    monkeypatch.setenv("KUBEPIE_REAL_NVIDIA_SMI", str(tmp_path / "absent"))
    missing = await run_as(node, "big", "gpu.nvidia_smi", "-q")
    assert missing.rc == 2
    assert "unsupported options -q" in missing.err
