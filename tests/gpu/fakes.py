"""Doubles named in DESIGN.md section 8 for GPU tests: the fake NVML's data file, and a fake
kubelet (``Registration`` and pod-resources ``PodResourcesLister``) on real gRPC unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from gpu._proto import deviceplugin_v1beta1_pb2 as dp
from gpu._proto import deviceplugin_v1beta1_pb2_grpc as dp_grpc
from gpu._proto import podresources_v1_pb2 as pr
from gpu._proto import podresources_v1_pb2_grpc as pr_grpc

H100 = "GPU-11111111-2222-3333-4444-555555555555"
A100 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MIG_3G = "MIG-33333333-0000-0000-0000-000000000001"
MIG_2G = "MIG-22222222-0000-0000-0000-000000000002"
SECOND = "GPU-99999999-8888-7777-6666-555555555555"


@dataclass
class Gpu:
    index: int
    uuid: str
    name: str
    total_mib: int
    used_mib: int = 0
    util: int = 0
    lost: bool = False


@dataclass
class Mig:
    gpu_index: int
    slot: int
    uuid: str
    gi: int
    total_mib: int
    name: str
    used_mib: int = 0


@dataclass
class Proc:
    device_uuid: str
    pid: int
    used_mib: int


class FakeNvmlData:
    """The text file the fake ``libnvidia-ml.so.1`` reads on every call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gpus: list[Gpu] = []
        self.migs: list[Mig] = []
        self.procs: list[Proc] = []

    def write(self) -> None:
        lines = [
            f"gpu {g.index} {g.uuid} {g.total_mib} {g.used_mib} {g.util} 0 {int(g.lost)} {g.name}"
            for g in self.gpus
        ]
        lines += [
            f"mig {m.gpu_index} {m.slot} {m.uuid} {m.gi} 0 {m.total_mib} {m.used_mib} {m.name}"
            for m in self.migs
        ]
        lines += [f"proc {p.device_uuid} {p.pid} {p.used_mib}" for p in self.procs]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.path)

    def standard(self) -> FakeNvmlData:
        """An 80 GiB H100 and an A100 split into a 3g.20gb and a 2g.10gb MIG instance."""
        self.gpus = [
            Gpu(0, H100, "NVIDIA H100 80GB HBM3", 81920, used_mib=2048, util=37),
            Gpu(1, A100, "NVIDIA A100-SXM4-40GB", 40960),
        ]
        self.migs = [
            Mig(1, 0, MIG_3G, 1, 20480, "NVIDIA A100-SXM4-40GB MIG 3g.20gb"),
            Mig(1, 1, MIG_2G, 2, 10240, "NVIDIA A100-SXM4-40GB MIG 2g.10gb"),
        ]
        self.procs = []
        self.write()
        return self


class FakeKubelet:
    """The kubelet's ``Registration`` service on ``<dir>/kubelet.sock``; records requests."""

    def __init__(self, plugin_dir: Path) -> None:
        self.plugin_dir = plugin_dir
        self.requests: asyncio.Queue[dp.RegisterRequest] = asyncio.Queue()
        self._server: Any = None

    async def Register(self, request: dp.RegisterRequest, context: Any) -> dp.Empty:
        await self.requests.put(request)
        return dp.Empty()

    async def start(self) -> FakeKubelet:
        server = grpc.aio.server()
        dp_grpc.add_RegistrationServicer_to_server(self, server)
        server.add_insecure_port(f"unix://{self.plugin_dir / 'kubelet.sock'}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    async def restart(self) -> None:
        """What a restarting kubelet does: stop, delete every socket, serve a new kubelet.sock."""
        await self.stop()
        for sock in self.plugin_dir.glob("*.sock"):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        await self.start()

    async def next_request(self) -> dp.RegisterRequest:
        async with asyncio.timeout(10):
            return await self.requests.get()


@dataclass
class AssignedContainer:
    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: Sequence[str]


class FakePodResources:
    """The kubelet's pod-resources ``List`` on a unix socket, answering what a test sets."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.containers: list[AssignedContainer] = []
        self._server: Any = None

    def set(self, containers: Iterable[AssignedContainer]) -> None:
        self.containers = list(containers)

    async def List(self, request: Any, context: Any) -> pr.ListPodResourcesResponse:
        pods: dict[tuple[str, str], pr.PodResources] = {}
        for c in self.containers:
            pod = pods.setdefault(
                (c.namespace, c.pod), pr.PodResources(name=c.pod, namespace=c.namespace)
            )
            pod.containers.append(
                pr.ContainerResources(
                    name=c.container,
                    devices=[
                        pr.ContainerDevices(resource_name=c.resource, device_ids=list(c.device_ids))
                    ],
                )
            )
        return pr.ListPodResourcesResponse(pod_resources=list(pods.values()))

    async def GetAllocatableResources(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this fake")

    async def Get(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of this fake")

    async def start(self) -> FakePodResources:
        server = grpc.aio.server()
        pr_grpc.add_PodResourcesListerServicer_to_server(self, server)
        server.add_insecure_port(f"unix://{self.socket_path}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
