"""Client of the kubelet pod-resources API (v1) over its unix socket.

``List`` answers, for each pod on the node, which device IDs of which resource each container
holds. It is how meta-devices are mapped back to pods: ``Allocate`` only ever sees device IDs.
One of the two modules that import ``grpc``.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from gpu._proto import podresources_v1_pb2 as pb
from gpu._proto import podresources_v1_pb2_grpc as pb_grpc
from gpu.errors import KubeletError
from gpu.models import ContainerRef


def to_assignments(
    response: pb.ListPodResourcesResponse,
) -> dict[ContainerRef, dict[str, tuple[str, ...]]]:
    """Flatten a ``List`` answer into device IDs per resource per container (pure)."""
    result: dict[ContainerRef, dict[str, tuple[str, ...]]] = {}
    for pod in response.pod_resources:
        for container in pod.containers:
            by_resource: dict[str, tuple[str, ...]] = {}
            for devices in container.devices:
                ids = (*by_resource.get(devices.resource_name, ()), *devices.device_ids)
                by_resource[devices.resource_name] = ids
            if by_resource:
                result[ContainerRef(pod.namespace, pod.name, container.name)] = by_resource
    return result


class PodResourcesClient:
    """:class:`gpu.workloads.DeviceAssignments` over the kubelet's pod-resources socket."""

    def __init__(self, socket_path: Path, timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    async def assignments(self) -> dict[ContainerRef, dict[str, tuple[str, ...]]]:
        try:
            async with grpc.aio.insecure_channel(f"unix://{self.socket_path}") as channel:
                stub = pb_grpc.PodResourcesListerStub(channel)
                response = await stub.List(pb.ListPodResourcesRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise KubeletError(f"pod-resources List on {self.socket_path} failed: {exc}") from exc
        return to_assignments(response)
