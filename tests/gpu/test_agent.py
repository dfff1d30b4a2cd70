"""The whole node agent: fake kubelet and pod-resources on gRPC unix sockets, kmock as the API
server, the fake NVML, a real child process; registration, enforcement with an Event, the
daemon API and the exporter, all from one configuration file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import kmock
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gpu.agent import Agent
from gpu.client import query
from gpu.config import load_config
from gpu.nvml import PynvmlNvml
from tests.gpu.fakes import (
    H100,
    AssignedContainer,
    FakeKubelet,
    FakeNvmlData,
    FakePodResources,
    Proc,
)
from tests.gpu.test_kube import pod_object
from tests.gpu.workload import GPU_RESOURCE, Pod, fake_proc_root
from tests.support import free_port

CONFIG = """
sharing:
  - resource: kubepie.io/gpu-shares
    shares_per_device: 4
    match: {{mig: false}}
device_plugin_dir: {plugin_dir}
pod_resources_socket: {pod_resources}
proc_root: {proc_root}
daemon_socket: {daemon_socket}
admin_token_file: {token_file}
metrics_host: 127.0.0.1
metrics_port: {port}
health_interval_s: 0.1
enforcer: {{interval_s: 0.1, grace_s: 0.3, term_timeout_s: 1}}
"""


async def eventually(ready: Callable[[], object]) -> None:
    async with asyncio.timeout(10):
        while True:
            if ready():
                return
            await asyncio.sleep(0.05)


async def test_agent_end_to_end(
    kmock: kmock.KubernetesEmulator,
    kubelet: FakeKubelet,
    nvml: PynvmlNvml,
    nvml_data: FakeNvmlData,
    short_dir: Path,
    tmp_path: Path,
) -> None:
    hungry = Pod("team-a", "hungry", "d" * 8, shares=1)  # limit 20480 MiB
    calm = Pod("team-b", "calm", "e" * 8, shares=1)
    port = free_port()
    (tmp_path / "token").write_text("admin-secret\n")
    config_file = tmp_path / "gpu.yaml"
    config_file.write_text(
        CONFIG.format(
            plugin_dir=kubelet.plugin_dir,
            pod_resources=short_dir / "pr.sock",
            proc_root=tmp_path / "proc",
            daemon_socket=short_dir / "run" / "daemon.sock",
            token_file=tmp_path / "token",
            port=port,
        )
    )
    config = load_config(config_file)
    pod_resources = await FakePodResources(config.pod_resources_socket).start()
    pod_resources.set(
        AssignedContainer(p.namespace, p.name, p.container, GPU_RESOURCE, p.device_ids(n))
        for n, p in enumerate([hungry, calm])
    )
    hungry_proc = await asyncio.create_subprocess_exec("sleep", "120")
    fake_proc_root(
        config.proc_root, [hungry, calm], {"hungry": hungry_proc.pid, "calm": os.getpid()}
    )
    nvml_data.procs = [Proc(H100, hungry_proc.pid, 1000), Proc(H100, os.getpid(), 700)]
    nvml_data.write()

    async with httpx.AsyncClient(base_url=str(kmock.url)) as api:
        for pod in (hungry, calm):
            body = pod_object(pod, "gpu-1")
            (
                await api.post(f"/api/v1/namespaces/{pod.namespace}/pods", json=body)
            ).raise_for_status()
        agent = Agent(config, nvml, api, "gpu-1", CollectorRegistry(), watch_interval_s=0.05)
        task = asyncio.create_task(agent.run())
        try:
            registered = await kubelet.next_request()
            assert registered.resource_name == GPU_RESOURCE

            # The daemon answers this test process as a container of team-b/calm.
            await eventually(config.daemon_socket.exists)
            view = await query(config.daemon_socket, {"op": "status"})
            assert view["caller"] == {"namespace": "team-b", "pod": "calm", "container": "main"}
            assert [p["used_bytes"] for p in view["processes"]] == [700 * 2**20]

            async with httpx.AsyncClient() as scraper:
                text = (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text
            names = {f.name for f in text_string_to_metric_families(text)}
            assert "kubepie_gpu_container_memory_used_bytes" in names

            # hungry goes over its limit: stopped after the grace period, with an Event.
            nvml_data.procs[0] = Proc(H100, hungry_proc.pid, 25000)
            nvml_data.write()
            assert await asyncio.wait_for(hungry_proc.wait(), 10) == -15
            async with asyncio.timeout(10):
                while True:
                    events = (await api.get("/api/v1/namespaces/team-a/events")).json()["items"]
                    if events:
                        break
                    await asyncio.sleep(0.1)
            assert events[0]["reason"] == "GpuMemoryLimitExceeded"
            assert events[0]["involvedObject"]["name"] == "hungry"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if hungry_proc.returncode is None:
                hungry_proc.kill()
                await hungry_proc.wait()
            await pod_resources.stop()


def test_agent_command_line_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
    missing = subprocess.run(
        [sys.executable, "-m", "gpu.agent", "--config", str(tmp_path / "absent.yaml"),
         "--node-name", "gpu-1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr
    (tmp_path / "bad.yaml").write_text("sharing: [{resource: nope}]\n")
    bad = subprocess.run(
        [sys.executable, "-m", "gpu.agent", "--config", str(tmp_path / "bad.yaml"),
         "--node-name", "gpu-1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "invalid GPU sharing configuration" in bad.stderr
    nameless = subprocess.run(
        [sys.executable, "-m", "gpu.agent", "--config", str(tmp_path / "bad.yaml")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert nameless.returncode == 2
    assert "NODE_NAME" in nameless.stderr
