"""GPU test fixtures: the fake NVML library (built with gcc), its data file, short socket dirs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpu.cgroups import ProcCgroupReader
from gpu.daemon import Daemon, read_admin_token
from gpu.monitor import Monitor
from gpu.nvml import PynvmlNvml
from gpu.podresources import PodResourcesClient
from tests.gpu.fakes import (
    H100,
    AssignedContainer,
    FakeKubelet,
    FakeNvmlData,
    FakePodResources,
    Proc,
)
from tests.gpu.workload import GPU_RESOURCE, Pod, cgroup_line, fake_proc_root, static_sources

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def fake_nvml_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``libnvidia-ml.so.1`` compiled from ``fake_nvml.c``, once per session."""
    out = tmp_path_factory.mktemp("fake-nvml") / "libnvidia-ml.so.1"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-o",
            str(out),
            str(HERE / "fake_nvml.c"),
        ],
        check=True,
    )
    return out


@pytest.fixture
def nvml_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvmlData:
    """The fake NVML's data file, pre-filled with :meth:`FakeNvmlData.standard`."""
    data = FakeNvmlData(tmp_path / "nvml.txt")
    monkeypatch.setenv("FAKE_NVML_DATA", str(data.path))
    return data.standard()


@pytest.fixture
def nvml(fake_nvml_library: Path, nvml_data: FakeNvmlData) -> Iterator[PynvmlNvml]:
    with PynvmlNvml(fake_nvml_library) as opened:
        yield opened


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="kpg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def kubelet(short_dir: Path) -> AsyncIterator[FakeKubelet]:
    plugin_dir = short_dir / "device-plugins"
    plugin_dir.mkdir()
    fake = await FakeKubelet(plugin_dir).start()
    yield fake
    await fake.stop()


@dataclass
class Node:
    """A node with two GPU pods, served by a real daemon on a unix socket."""

    proc_root: Path
    socket: Path
    token_file: Path
    pods: list[Pod]
    monitor: Monitor
    pod_resources: FakePodResources

    def place(self, pid: int, pod_name: str | None) -> None:
        """Make ``pid`` a process of ``pod_name``'s container (``None``: of no pod)."""
        by_name = {p.name: p for p in self.pods}
        (self.proc_root / str(pid)).mkdir(parents=True, exist_ok=True)
        text = (
            "0::/user.slice/session-1.scope\n"
            if pod_name is None
            else cgroup_line(by_name[pod_name])
        )
        (self.proc_root / str(pid) / "cgroup").write_text(text)


BIG_PID, SMALL_PID, SYSTEM_PID = 4001, 4002, 4003


@pytest.fixture
async def node(
    nvml: PynvmlNvml, nvml_data: FakeNvmlData, short_dir: Path, tmp_path: Path
) -> AsyncIterator[Node]:
    pods = [
        Pod("team-a", "big", "a" * 8, shares=1, limit_shares=2),
        Pod("team-b", "small", "b" * 8, shares=1),
    ]
    proc_root = fake_proc_root(tmp_path / "proc", pods, {"big": BIG_PID, "small": SMALL_PID})
    (proc_root / str(SYSTEM_PID)).mkdir()
    (proc_root / str(SYSTEM_PID) / "comm").write_text("Xorg\n")
    nvml_data.procs = [
        Proc(H100, BIG_PID, 1000),
        Proc(H100, SMALL_PID, 500),
        Proc(H100, SYSTEM_PID, 100),
    ]
    nvml_data.write()
    fake = await FakePodResources(short_dir / "pod-resources.sock").start()
    directory, static = static_sources(pods)
    assignments = await static.assignments()
    fake.set(
        AssignedContainer(ref.namespace, ref.pod, ref.container, resource, ids)
        for ref, by in assignments.items()
        for resource, ids in by.items()
    )
    monitor = Monitor(
        nvml,
        ProcCgroupReader(proc_root),
        directory,
        PodResourcesClient(fake.socket_path),
        [GPU_RESOURCE],
    )
    await monitor.refresh()
    token_file = tmp_path / "admin-token"
    token_file.write_text("s3cret-admin-credential\n")
    daemon = Daemon(
        monitor,
        ProcCgroupReader(proc_root),
        admin_token=read_admin_token(token_file),
        proc_root=proc_root,
    )
    socket = short_dir / "daemon.sock"
    server = await daemon.serve(socket)
    yield Node(proc_root, socket, token_file, pods, monitor, fake)
    server.close()
    await server.wait_closed()
    await fake.stop()
