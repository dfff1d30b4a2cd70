"""The device plugin against a fake kubelet on real gRPC unix sockets and the fake NVML."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gpu._proto import deviceplugin_v1beta1_pb2 as pb
from gpu._proto import deviceplugin_v1beta1_pb2_grpc as pb_grpc
from gpu.config import GpuConfig, parse_config
from gpu.deviceplugin import DevicePlugin, build_plugins
from gpu.nvml import PynvmlNvml
from tests.gpu.fakes import A100, H100, MIG_2G, MIG_3G, SECOND, FakeKubelet, FakeNvmlData, Gpu

CONFIG = """
sharing:
  - resource: kubepie.io/gpu-shares
    shares_per_device: 4
    strategy: {strategy}
    match: {{mig: false}}
  - resource: kubepie.io/mig-shares
    chunk_mb: 5120
    match: {{mig: true}}
health_interval_s: 0.05
device_plugin_dir: {plugin_dir}
daemon_socket: /run/kubepie-gpu/daemon.sock
"""


def make_config(plugin_dir: Path, strategy: str = "collocate") -> GpuConfig:
    return parse_config(CONFIG.format(strategy=strategy, plugin_dir=plugin_dir))


@contextlib.asynccontextmanager
async def running(plugins: list[DevicePlugin]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(p.run()) for p in plugins]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def stub(socket: Path) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
        yield pb_grpc.DevicePluginStub(channel)


async def test_registers_each_resource(kubelet: FakeKubelet, nvml: PynvmlNvml) -> None:
    plugins = build_plugins(make_config(kubelet.plugin_dir), nvml, watch_interval_s=0.05)
    async with running(plugins):
        requests = [await kubelet.next_request(), await kubelet.next_request()]
        by_resource = {r.resource_name: r for r in requests}
        assert set(by_resource) == {"kubepie.io/gpu-shares", "kubepie.io/mig-shares"}
        for plugin in plugins:
            request = by_resource[plugin.entry.resource]
            assert request.version == "v1beta1"
            assert request.endpoint == plugin.socket_path.name
            assert request.options.get_preferred_allocation_available
            assert (kubelet.plugin_dir / request.endpoint).is_socket()
            async with stub(plugin.socket_path) as client:
                options = await client.GetDevicePluginOptions(pb.Empty(), timeout=5)
            assert options.get_preferred_allocation_available
            assert not options.pre_start_required


async def test_registers_again_when_the_kubelet_restarts(
    kubelet: FakeKubelet, nvml: PynvmlNvml
) -> None:
    config = make_config(kubelet.plugin_dir)
    plugin = DevicePlugin(config, config.sharing[0], nvml, watch_interval_s=0.05)
    async with running([plugin]):
        first = await kubelet.next_request()
        await kubelet.restart()
        second = await kubelet.next_request()
        assert second.endpoint == first.endpoint
        assert second.resource_name == "kubepie.io/gpu-shares"
        assert plugin.socket_path.is_socket()
        async with stub(plugin.socket_path) as client:
            stream = client.ListAndWatch(pb.Empty(), timeout=5)
            listing = await stream.read()
            stream.cancel()
        assert len(listing.devices) == 4
        # Only our own socket deleted (kubelet.sock kept): register again as well.
        plugin.socket_path.unlink()
        third = await kubelet.next_request()
        assert third.endpoint == first.endpoint
        assert plugin.socket_path.is_socket()


async def test_list_and_watch_lists_shares_per_gpu_and_mig_instance_and_health(
    kubelet: FakeKubelet, nvml: PynvmlNvml, nvml_data: FakeNvmlData
) -> None:
    plugins = build_plugins(make_config(kubelet.plugin_dir), nvml, watch_interval_s=0.05)
    gpu_plugin, mig_plugin = plugins
    async with running(plugins):
        await kubelet.next_request()
        await kubelet.next_request()
        async with stub(mig_plugin.socket_path) as client:
            stream = client.ListAndWatch(pb.Empty(), timeout=10)
            listing = await stream.read()
            stream.cancel()
        ids = [d.ID for d in listing.devices]
        # 20 GiB and 10 GiB MIG instances in 5 GiB chunks; the whole A100 is in MIG mode.
        assert sum(i.startswith(MIG_3G + "-m5120-") for i in ids) == 4
        assert sum(i.startswith(MIG_2G + "-m5120-") for i in ids) == 2
        assert len(ids) == 6
        assert all(len(i) <= 63 for i in ids)

        async with stub(gpu_plugin.socket_path) as client:
            stream = client.ListAndWatch(pb.Empty(), timeout=10)
            listing = await stream.read()
            assert [d.ID for d in listing.devices] == [f"{H100}-m20480-{n}" for n in range(4)]
            assert {d.health for d in listing.devices} == {"Healthy"}
            assert not any(A100 in d.ID for d in listing.devices)

            nvml_data.gpus[0].lost = True
            nvml_data.write()
            listing = await stream.read()
            assert len(listing.devices) == 4
            assert {d.health for d in listing.devices} == {"Unhealthy"}

            nvml_data.gpus[0].lost = False
            nvml_data.write()
            listing = await stream.read()
            assert {d.health for d in listing.devices} == {"Healthy"}
            stream.cancel()


@pytest.fixture
def two_gpus(nvml_data: FakeNvmlData) -> FakeNvmlData:
    nvml_data.gpus = [
        Gpu(0, H100, "NVIDIA H100 80GB HBM3", 81920),
        Gpu(1, SECOND, "NVIDIA H100 80GB HBM3", 81920),
    ]
    nvml_data.migs = []
    nvml_data.write()
    return nvml_data


def share(uuid: str, n: int) -> str:
    return f"{uuid}-m20480-{n}"


async def preferred(
    client: Any, available: list[str], size: int, must: tuple[str, ...] = ()
) -> list[str]:
    request = pb.PreferredAllocationRequest(
        container_requests=[
            pb.ContainerPreferredAllocationRequest(
                available_deviceIDs=available,
                must_include_deviceIDs=list(must),
                allocation_size=size,
            )
        ]
    )
    response = await client.GetPreferredAllocation(request, timeout=5)
    return list(response.container_responses[0].deviceIDs)


@pytest.mark.parametrize("strategy", ["collocate", "spread", "no-split"])
async def test_preferred_allocation_and_allocate(
    kubelet: FakeKubelet, nvml: PynvmlNvml, two_gpus: FakeNvmlData, strategy: str
) -> None:
    config = make_config(kubelet.plugin_dir, strategy)
    plugin = DevicePlugin(config, config.sharing[0], nvml, watch_interval_s=0.05)
    # H100 has 1 share free, SECOND has 3: a request of 2 fits only on SECOND.
    available = [share(H100, 3), share(SECOND, 1), share(SECOND, 2), share(SECOND, 3)]
    async with running([plugin]), stub(plugin.socket_path) as client:
        await kubelet.next_request()
        two = await preferred(client, available, 2)
        assert len(two) == 2
        if strategy == "spread":
            assert {i.rsplit("-m", 1)[0] for i in two} == {H100, SECOND}
        else:
            assert two == [share(SECOND, 1), share(SECOND, 2)]

        # Four shares exist but no single device holds them all.
        if strategy == "no-split":
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await preferred(client, available, 4)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        else:
            assert sorted(await preferred(client, available, 4)) == sorted(available)
        # More than available: never fits.
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await preferred(client, available, 5)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # must_include is always part of the answer; no-split cannot add a second device.
        if strategy == "no-split":
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await preferred(client, available, 2, must=(share(H100, 3),))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        else:
            with_must = await preferred(client, available, 2, must=(share(H100, 3),))
            assert with_must == [share(H100, 3), share(SECOND, 1)]

        allocate = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=two)]
        )
        answer = (await client.Allocate(allocate, timeout=5)).container_responses[0]
        envs = dict(answer.envs)
        assert envs["NVIDIA_VISIBLE_DEVICES"] == ",".join(
            dict.fromkeys(i.rsplit("-m", 1)[0] for i in two)
        )
        assert envs["KUBEPIE_GPU_SHARES"] == "2"
        assert envs["KUBEPIE_GPU_MEMORY_GUARANTEE_MB"] == str(2 * 20480)
        assert envs["KUBEPIE_GPU_MEMORY_LIMIT_MB"] == str(2 * 20480)
        assert envs["KUBEPIE_GPU_DAEMON_SOCKET"] == "/run/kubepie-gpu/daemon.sock"
        assert "NVIDIA_MIG_CONFIG_DEVICES" not in envs
        assert [(m.host_path, m.container_path, m.read_only) for m in answer.mounts] == [
            ("/run/kubepie-gpu", "/run/kubepie-gpu", True)
        ]

        split = pb.AllocateRequest(
            container_requests=[
                pb.ContainerAllocateRequest(devices_ids=[share(H100, 3), share(SECOND, 1)])
            ]
        )
        if strategy == "no-split":
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.Allocate(split, timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        else:
            answer = (await client.Allocate(split, timeout=5)).container_responses[0]
            assert answer.envs["NVIDIA_VISIBLE_DEVICES"] == f"{H100},{SECOND}"

        unknown = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=[share(H100, 9)])]
        )
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await client.Allocate(unknown, timeout=5)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_allocate_mig_instance_names_the_instance(
    kubelet: FakeKubelet, nvml: PynvmlNvml
) -> None:
    config = make_config(kubelet.plugin_dir)
    plugin = DevicePlugin(config, config.sharing[1], nvml, watch_interval_s=0.05)
    async with running([plugin]), stub(plugin.socket_path) as client:
        await kubelet.next_request()
        ids = [f"{MIG_2G}-m5120-0", f"{MIG_2G}-m5120-1"]
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)]
        )
        envs = dict((await client.Allocate(request, timeout=5)).container_responses[0].envs)
    assert envs["NVIDIA_VISIBLE_DEVICES"] == MIG_2G
    assert envs["KUBEPIE_GPU_MIG_INSTANCES"] == f"{A100}:2"
    assert envs["KUBEPIE_GPU_MEMORY_GUARANTEE_MB"] == "10240"


async def test_waits_for_a_kubelet_that_is_down(kubelet: FakeKubelet, nvml: PynvmlNvml) -> None:
    await kubelet.stop()
    (kubelet.plugin_dir / "kubelet.sock").unlink(missing_ok=True)
    config = make_config(kubelet.plugin_dir)
    plugin = DevicePlugin(config, config.sharing[0], nvml, watch_interval_s=0.05)
    async with running([plugin]):
        await asyncio.sleep(0.3)
        assert kubelet.requests.empty()
        assert plugin.socket_path.is_socket()  # serving already; the kubelet will find it
        await kubelet.start()
        request = await kubelet.next_request()
        assert request.endpoint == plugin.socket_path.name
