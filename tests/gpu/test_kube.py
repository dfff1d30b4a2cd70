"""The Kubernetes adapter against kmock (an emulated API server over real HTTP), and the
enforcer recording its Event there while it stops a real process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest

from gpu.cgroups import ProcCgroupReader
from gpu.config import EnforcerSettings
from gpu.enforcer import EnforcementEvent, Enforcer
from gpu.errors import KubernetesApiError
from gpu.kube import KubernetesEvents, KubernetesPods, in_cluster
from gpu.monitor import Monitor
from gpu.nvml import PynvmlNvml
from gpu.podresources import PodResourcesClient
from tests.gpu.fakes import H100, AssignedContainer, FakeNvmlData, FakePodResources, Proc
from tests.gpu.workload import GPU_RESOURCE, Pod, fake_proc_root
from tests.support import free_port


def pod_object(pod: Pod, node: str) -> dict[str, Any]:
    info = pod.info()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "annotations": dict(info.annotations),
        },
        "spec": {"nodeName": node, "containers": [{"name": pod.container, "image": "x"}]},
        "status": {
            "containerStatuses": [
                {"name": pod.container, "containerID": f"containerd://{pod.container_id}"}
            ]
        },
    }


@pytest.fixture
async def api(kmock: kmock.KubernetesEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=str(kmock.url)) as client:
        yield client


BIG = Pod("team-a", "big", "a" * 8, shares=1, limit_shares=2)
ELSEWHERE = Pod("team-c", "elsewhere", "c" * 8, shares=1)


async def test_pods_of_this_node(api: httpx.AsyncClient) -> None:
    for pod, node in ((BIG, "gpu-1"), (ELSEWHERE, "gpu-2")):
        response = await api.post(
            f"/api/v1/namespaces/{pod.namespace}/pods", json=pod_object(pod, node)
        )
        response.raise_for_status()
    pods = await KubernetesPods(api, "gpu-1").pods()
    assert [(p.namespace, p.name, p.uid) for p in pods] == [("team-a", "big", BIG.uid)]
    assert pods[0].containers == {f"containerd://{BIG.container_id}": "main"}
    assert pods[0].annotations == {"gpu-mem-limit.kubepie.io/gpu-shares": "2"}


async def test_events_are_recorded_on_the_pod(api: httpx.AsyncClient) -> None:
    event = EnforcementEvent("team-a", "big", BIG.uid, "main", "GpuMemoryLimitExceeded", "too much")
    await KubernetesEvents(api, "gpu-1").emit(event)
    events = (await api.get("/api/v1/namespaces/team-a/events")).json()["items"]
    assert len(events) == 1
    recorded = events[0]
    assert recorded["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "team-a",
        "name": "big",
        "uid": BIG.uid,
        "fieldPath": "spec.containers{main}",
    }
    assert (recorded["reason"], recorded["message"], recorded["type"]) == (
        "GpuMemoryLimitExceeded",
        "too much",
        "Warning",
    )
    assert recorded["source"] == {"component": "kubepie-gpu", "host": "gpu-1"}


async def test_unreachable_api_server() -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(KubernetesApiError):
            await KubernetesPods(client, "gpu-1").pods()
    with pytest.raises(KubernetesApiError, match="not in a cluster"):
        in_cluster({})


async def test_enforcer_with_the_api_server_and_pod_resources(
    api: httpx.AsyncClient,
    nvml: PynvmlNvml,
    nvml_data: FakeNvmlData,
    short_dir: Path,
    tmp_path: Path,
) -> None:
    (
        await api.post("/api/v1/namespaces/team-a/pods", json=pod_object(BIG, "gpu-1"))
    ).raise_for_status()
    child = await asyncio.create_subprocess_exec("sleep", "120")
    try:
        proc_root = fake_proc_root(tmp_path / "proc", [BIG], {"big": child.pid})
        nvml_data.procs = [Proc(H100, child.pid, 41000)]  # limit: 2 shares of 20480 MiB
        nvml_data.write()
        pod_resources = await FakePodResources(short_dir / "pr.sock").start()
        pod_resources.set(
            [AssignedContainer("team-a", "big", "main", GPU_RESOURCE, BIG.device_ids())]
        )
        monitor = Monitor(
            nvml,
            ProcCgroupReader(proc_root),
            KubernetesPods(api, "gpu-1"),
            PodResourcesClient(pod_resources.socket_path),
            [GPU_RESOURCE],
        )
        enforcer = Enforcer(monitor, EnforcerSettings(grace_s=0), KubernetesEvents(api, "gpu-1"))
        actions = await enforcer.tick()
        await pod_resources.stop()
        assert [a.step for a in actions] == ["term"]
        assert await asyncio.wait_for(child.wait(), 5) == -15
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    events = (await api.get("/api/v1/namespaces/team-a/events")).json()["items"]
    assert [e["reason"] for e in events] == ["GpuMemoryLimitExceeded"]
    assert f"sent SIGTERM to GPU processes {child.pid}" in events[0]["message"]
