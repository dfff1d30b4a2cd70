"""Who uses which GPU memory: NVML processes attributed to containers and pods.

:class:`Monitor` keeps the slowly changing part (pods of the node and their meta-devices,
refreshed by :meth:`Monitor.refresh` from the Kubernetes and pod-resources APIs) and reads
the fast part (devices, processes, memory) from NVML each time :meth:`Monitor.snapshot` is
called: at scrape time for the exporter, per request for the daemon API, per tick for the
enforcer. :func:`attribute` is the pure core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from gpu.cgroups import ContainerResolver
from gpu.models import ContainerShares, ContainerUsage, GpuProcess, Snapshot
from gpu.nvml import Nvml
from gpu.workloads import ContainerKey, DeviceAssignments, PodDirectory, PodInfo, join_shares


def attribute(
    processes: Iterable[GpuProcess],
    resolver: ContainerResolver,
    shares: Mapping[ContainerKey, ContainerShares],
) -> tuple[list[ContainerUsage], list[GpuProcess]]:
    """Group processes per (container, device); processes of no known container go apart."""
    grouped: dict[tuple[ContainerKey, str], list[GpuProcess]] = {}
    unattributed: list[GpuProcess] = []
    for process in processes:
        container = resolver.container_of(process.pid)
        key = None if container is None else (container.pod_uid, container.container_id)
        if key is None or key not in shares:
            unattributed.append(process)
            continue
        grouped.setdefault((key, process.device_uuid), []).append(process)
    usage = [
        ContainerUsage(
            shares=shares[key],
            device_uuid=device_uuid,
            gpu_instance_id=procs[0].gpu_instance_id,
            used=sum(p.used_memory for p in procs),
            pids=tuple(sorted(p.pid for p in procs)),
        )
        for (key, device_uuid), procs in grouped.items()
    ]
    return usage, unattributed


class Monitor:
    """Devices, containers and their usage on this node."""

    def __init__(
        self,
        nvml: Nvml,
        resolver: ContainerResolver,
        pods: PodDirectory,
        assignments: DeviceAssignments,
        resources: Sequence[str],
    ) -> None:
        self.nvml = nvml
        self.resolver = resolver
        self._pods_source = pods
        self._assignments_source = assignments
        self.resources = tuple(resources)
        self._shares: dict[ContainerKey, ContainerShares] = {}
        self._pods: dict[str, PodInfo] = {}

    async def refresh(self) -> None:
        """Re-read the pods of the node and the meta-devices of their containers."""
        pods, assignments = await asyncio.gather(
            self._pods_source.pods(), self._assignments_source.assignments()
        )
        self._pods = {pod.uid: pod for pod in pods}
        self._shares = join_shares(pods, assignments, self.resources)

    @property
    def shares(self) -> dict[ContainerKey, ContainerShares]:
        return dict(self._shares)

    def pod(self, uid: str) -> PodInfo | None:
        return self._pods.get(uid)

    def snapshot(self) -> Snapshot:
        devices = self.nvml.devices()
        processes = self.nvml.processes()
        usage, unattributed = attribute(processes, self.resolver, self._shares)
        return Snapshot(tuple(devices), tuple(usage), tuple(unattributed), tuple(processes))
