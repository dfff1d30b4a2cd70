"""The status endpoint: a real Jupyter server with the extension, a real walltime sidecar and
cgroup files laid out as the kernel does (v2 and v1)."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hubintegration.status import (
    GpuDaemon,
    Usage,
    gpu_usage_from_status,
    read_cgroup_memory,
    status_line,
)
from tests.support import ManagedProcess, free_port

BIN = Path(sys.executable).parent
GIB = 1024**3


def _cgroup_v2(root: Path, current: int, inactive: int, limit: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.stat").write_text(f"anon 1000\nfile 2000\ninactive_file {inactive}\n")
    return root


def test_cgroup_v2_working_set_and_limit(tmp_path: Path) -> None:
    root = _cgroup_v2(tmp_path, 500 * 2**20, 50 * 2**20, str(50 * GIB))
    assert read_cgroup_memory(root) == Usage(450 * 2**20, 50 * GIB)
    (root / "memory.max").write_text("max\n")
    assert read_cgroup_memory(root) == Usage(450 * 2**20, None)


def test_cgroup_v1_working_set_and_unlimited(tmp_path: Path) -> None:
    v1 = tmp_path / "memory"
    v1.mkdir()
    (v1 / "memory.usage_in_bytes").write_text(f"{300 * 2**20}\n")
    (v1 / "memory.limit_in_bytes").write_text(f"{2 * GIB}\n")
    (v1 / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {100 * 2**20}\n")
    assert read_cgroup_memory(tmp_path) == Usage(200 * 2**20, 2 * GIB)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert read_cgroup_memory(tmp_path) == Usage(200 * 2**20, None)
    assert read_cgroup_memory(tmp_path / "nothing") is None


def test_status_line_as_in_the_seed() -> None:
    line = status_line(
        Usage(450 * 2**20, 51200 * 2**20),
        Usage(1164 * 2**20, 10201 * 2**20),
        Usage(28 * 60 + 5, 1800),
    )
    assert line == "Mem: 450 / 51200 MB | GPU: 1164 / 10201 MB | Walltime: 28 / 30 min"
    assert status_line(Usage(0, None), None, None) == "Mem: 0 / - MB"


def test_gpu_usage_from_the_daemon_status_result() -> None:
    result = {
        "node": False,
        "devices": [],
        "containers": [
            {"container": "notebook", "used_bytes": 1164 * 2**20, "limit_bytes": 10201 * 2**20}
        ],
        "processes": [],
    }
    assert gpu_usage_from_status(result) == Usage(1164 * 2**20, 10201 * 2**20)
    assert gpu_usage_from_status({"containers": []}) is None


async def test_gpu_daemon_absent_gives_no_reading(tmp_path: Path) -> None:
    assert await GpuDaemon(tmp_path / "daemon.sock").read() is None


@pytest.fixture(scope="module")
def walltime_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "KUBEPIE_HUB_API_URL": "http://127.0.0.1:9/hub/api",
        "KUBEPIE_HUB_TOKEN": "unused",
        "KUBEPIE_USER": "alice",
        "KUBEPIE_WALLTIME_DEADLINE": str(time.time() + 2 * 60 - 7),
        "KUBEPIE_WALLTIME_TOTAL": str(30 * 60),
        "KUBEPIE_WALLTIME_PORT": str(port),
    }
    log = tmp_path_factory.mktemp("walltime") / "walltime.log"
    with ManagedProcess("kubepie-walltime", [str(BIN / "kubepie-walltime")], log, env=env) as p:
        p.wait_for_port(port)
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def jupyter_server(
    tmp_path_factory: pytest.TempPathFactory, walltime_sidecar: str
) -> Iterator[tuple[str, str]]:
    work = tmp_path_factory.mktemp("jupyter")
    cgroup = _cgroup_v2(work / "cgroup", 500 * 2**20, 50 * 2**20, str(51200 * 2**20))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "KUBEPIE_CGROUP_ROOT": str(cgroup),
        "KUBEPIE_WALLTIME_URL": walltime_sidecar,
        "JUPYTER_CONFIG_DIR": str(work / "config"),
        "JUPYTER_DATA_DIR": str(work / "data"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
    }
    argv = [
        str(BIN / "jupyter-server"),
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.jpserver_extensions={'hubintegration.serverext': True}",
        f"--ServerApp.root_dir={work}",
    ]
    with ManagedProcess("jupyter-server", argv, work / "server.log", env=env) as process:
        process.wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}", token


def test_status_endpoint_of_the_jupyter_server(jupyter_server: tuple[str, str]) -> None:
    url, token = jupyter_server
    assert httpx.get(f"{url}/api/kubepie/status", timeout=10).status_code == 403
    response = httpx.get(
        f"{url}/api/kubepie/status", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert response.status_code == 200
    body = response.json()
    assert body["memory"] == {"used_mb": 450, "limit_mb": 51200}
    assert body["gpu"] is None
    assert body["walltime"]["total_s"] == 1800
    assert body["line"] == "Mem: 450 / 51200 MB | Walltime: 28 / 30 min"
