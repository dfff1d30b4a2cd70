"""The enforcer stops real child processes that the fake NVML reports over their limit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gpu.cgroups import ProcCgroupReader
from gpu.config import EnforcerSettings
from gpu.enforcer import Enforcer, EnforcerMetrics, RecordingEventSink
from gpu.models import ContainerRef
from gpu.monitor import Monitor
from gpu.nvml import PynvmlNvml
from tests.gpu.fakes import H100, FakeNvmlData, Proc
from tests.gpu.workload import GPU_RESOURCE, Pod, fake_proc_root, static_sources

IGNORES_TERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('ready', flush=True)
time.sleep(120)
"""


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()


def spawn(children: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(argv, stdout=subprocess.PIPE)
    children.append(child)
    return child


# Pod "big" holds 1 share of 20 GiB with an annotation raising its limit to 2 shares (40 GiB);
# pod "small" holds 1 share without annotation (limit 20 GiB).
def pods() -> list[Pod]:
    return [
        Pod("team-a", "big", "a" * 8, shares=1, limit_shares=2),
        Pod("team-b", "small", "b" * 8, shares=1),
    ]


def make_monitor(nvml: PynvmlNvml, proc_root: Path, pid_of: dict[str, int]) -> Monitor:
    fake_proc_root(proc_root, pods(), pid_of)
    directory, assignments = static_sources(pods())
    return Monitor(nvml, ProcCgroupReader(proc_root), directory, assignments, [GPU_RESOURCE])


async def test_kills_the_container_over_its_limit_and_spares_the_other(
    nvml: PynvmlNvml,
    nvml_data: FakeNvmlData,
    tmp_path: Path,
    children: list[subprocess.Popen[bytes]],
) -> None:
    over = spawn(children, ["sleep", "120"])
    under = spawn(children, ["sleep", "120"])
    # big: 41000 MiB > 40960 MiB limit (but the request alone was 20480); small: 20000 < 20480.
    nvml_data.procs = [Proc(H100, over.pid, 41000), Proc(H100, under.pid, 20000)]
    nvml_data.write()
    monitor = make_monitor(nvml, tmp_path / "proc", {"big": over.pid, "small": under.pid})
    events = RecordingEventSink()
    registry = CollectorRegistry()
    settings = EnforcerSettings(grace_s=0, term_timeout_s=0.2)
    enforcer = Enforcer(monitor, settings, events, EnforcerMetrics(registry))

    actions = await enforcer.tick()

    assert [(a.step, a.overuse.pids) for a in actions] == [("term", (over.pid,))]
    assert over.wait(5) == -15  # SIGTERM
    assert under.poll() is None
    assert len(events.events) == 1
    event = events.events[0]
    assert (event.namespace, event.pod, event.container) == ("team-a", "big", "main")
    assert event.reason == "GpuMemoryLimitExceeded"
    assert "41000 MiB" in event.message
    assert "40960 MiB" in event.message
    assert f"sent SIGTERM to GPU processes {over.pid}" in event.message
    labels = {"namespace": "team-a", "pod": "big", "container": "main", "action": "term"}
    assert registry.get_sample_value("kubepie_gpu_enforcer_actions_total", labels) == 1.0


async def test_sigkill_after_the_term_timeout(
    nvml: PynvmlNvml,
    nvml_data: FakeNvmlData,
    tmp_path: Path,
    children: list[subprocess.Popen[bytes]],
) -> None:
    stubborn = spawn(children, [sys.executable, "-c", IGNORES_TERM])
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"
    nvml_data.procs = [Proc(H100, stubborn.pid, 30000)]
    nvml_data.write()
    monitor = make_monitor(nvml, tmp_path / "proc", {"small": stubborn.pid})
    now = [1000.0]
    events = RecordingEventSink()
    settings = EnforcerSettings(grace_s=30, term_timeout_s=10)
    enforcer = Enforcer(monitor, settings, events, clock=lambda: now[0])

    assert await enforcer.tick() == []  # over its limit, inside the grace period
    now[0] += 29
    assert await enforcer.tick() == []
    now[0] += 2
    assert [a.step for a in await enforcer.tick()] == ["term"]
    now[0] += 5
    assert await enforcer.tick() == []
    assert stubborn.poll() is None  # SIGTERM ignored
    now[0] += 5
    assert [a.step for a in await enforcer.tick()] == ["kill"]
    assert stubborn.wait(5) == -9
    assert [e.reason for e in events.events] == ["GpuMemoryLimitExceeded", "GpuProcessesKilled"]


async def test_back_under_the_limit_resets_the_grace_period(
    nvml: PynvmlNvml,
    nvml_data: FakeNvmlData,
    tmp_path: Path,
    children: list[subprocess.Popen[bytes]],
) -> None:
    child = spawn(children, ["sleep", "120"])
    nvml_data.procs = [Proc(H100, child.pid, 30000)]
    nvml_data.write()
    monitor = make_monitor(nvml, tmp_path / "proc", {"small": child.pid})
    now = [0.0]
    enforcer = Enforcer(
        monitor, EnforcerSettings(grace_s=10), RecordingEventSink(), clock=lambda: now[0]
    )
    assert await enforcer.tick() == []
    now[0] += 8
    nvml_data.procs = [Proc(H100, child.pid, 100)]
    nvml_data.write()
    assert await enforcer.tick() == []
    now[0] += 8
    nvml_data.procs = [Proc(H100, child.pid, 30000)]
    nvml_data.write()
    assert await enforcer.tick() == []  # a new episode: 0 s over, not 16
    assert child.poll() is None


async def test_dry_run_signals_nothing(
    nvml: PynvmlNvml,
    nvml_data: FakeNvmlData,
    tmp_path: Path,
    children: list[subprocess.Popen[bytes]],
) -> None:
    child = spawn(children, ["sleep", "120"])
    nvml_data.procs = [Proc(H100, child.pid, 50000)]
    nvml_data.write()
    monitor = make_monitor(nvml, tmp_path / "proc", {"big": child.pid})
    events = RecordingEventSink()
    registry = CollectorRegistry()
    settings = EnforcerSettings(grace_s=0, dry_run=True)
    enforcer = Enforcer(monitor, settings, events, EnforcerMetrics(registry))
    assert [a.step for a in await enforcer.tick()] == ["term"]
    assert child.poll() is None
    assert "would send SIGTERM" in events.events[0].message
    labels = {"namespace": "team-a", "pod": "big", "container": "main", "action": "dry_run_term"}
    assert registry.get_sample_value("kubepie_gpu_enforcer_actions_total", labels) == 1.0
    assert monitor.snapshot().used_by(ContainerRef("team-a", "big", "main")) == 50000 * 2**20
