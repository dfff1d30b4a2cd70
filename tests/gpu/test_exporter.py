"""The exporter scraped over HTTP: NVML read at scrape time, usage attributed to containers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gpu.exporter import GpuCollector, serve_metrics
from tests.gpu.conftest import Node
from tests.gpu.fakes import H100, MIG_3G, FakeNvmlData, Proc
from tests.support import free_port

MIB = 2**20


@pytest.fixture
def metrics_url(node: Node) -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(GpuCollector(node.monitor))
    port = free_port()
    server, thread = serve_metrics(registry, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    response.raise_for_status()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


async def test_scrape_carries_devices_and_containers(
    node: Node, nvml_data: FakeNvmlData, metrics_url: str
) -> None:
    samples = await scrape(metrics_url)
    h100 = labels(device_uuid=H100, gpu_instance_id="", model="NVIDIA H100 80GB HBM3")
    mig = labels(device_uuid=MIG_3G, gpu_instance_id="1", model="NVIDIA A100-SXM4-40GB")
    assert samples["kubepie_gpu_device_memory_total_bytes"][h100] == 81920 * MIB
    assert samples["kubepie_gpu_device_memory_used_bytes"][h100] == 2048 * MIB
    assert samples["kubepie_gpu_device_memory_total_bytes"][mig] == 20480 * MIB
    assert samples["kubepie_gpu_device_utilization_ratio"][h100] == pytest.approx(0.37)
    assert mig not in samples["kubepie_gpu_device_utilization_ratio"]
    assert samples["kubepie_gpu_device_healthy"][h100] == 1

    big = labels(namespace="team-a", pod="big", container="main")
    small = labels(namespace="team-b", pod="small", container="main")
    used = samples["kubepie_gpu_container_memory_used_bytes"]
    on_h100 = {"device_uuid": H100, "gpu_instance_id": ""}
    assert used[labels(namespace="team-a", pod="big", container="main", **on_h100)] == 1000 * MIB
    assert used[labels(namespace="team-b", pod="small", container="main", **on_h100)] == 500 * MIB
    assert samples["kubepie_gpu_container_memory_guarantee_bytes"][big] == 20480 * MIB
    assert samples["kubepie_gpu_container_memory_limit_bytes"][big] == 40960 * MIB
    assert samples["kubepie_gpu_container_memory_limit_bytes"][small] == 20480 * MIB
    assert samples["kubepie_gpu_unattributed_memory_bytes"][labels(device_uuid=H100)] == 100 * MIB

    # Read at scrape time: a change in NVML shows in the next scrape.
    nvml_data.procs = [Proc(H100, 4001, 3000)]
    nvml_data.write()
    samples = await scrape(metrics_url)
    assert list(samples["kubepie_gpu_container_memory_used_bytes"].values()) == [3000 * MIB]
    nvml_data.gpus[0].lost = True
    nvml_data.write()
    samples = await scrape(metrics_url)
    assert samples["kubepie_gpu_device_healthy"][h100] == 0
    assert "kubepie_gpu_container_memory_used_bytes" not in samples
