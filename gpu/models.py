"""Plain data shared by the GPU modules: devices, processes, containers, usage.

Sizes are bytes unless a name says otherwise. Everything here is frozen and pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuDevice:
    """A schedulable GPU: a whole physical GPU, or one MIG instance of one.

    ``uuid`` is what ``NVIDIA_VISIBLE_DEVICES`` takes (``GPU-...`` or ``MIG-...``).
    """

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_used: int
    healthy: bool = True
    #: GPU busy percentage over NVML's last sample period; ``None`` for MIG instances.
    utilization_gpu: int | None = None
    parent_uuid: str | None = None
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None

    @property
    def is_mig(self) -> bool:
        return self.parent_uuid is not None

    @property
    def mig_profile(self) -> str | None:
        """The MIG profile (``3g.40gb``) from NVML's instance name ``<model> MIG 3g.40gb``."""
        if not self.is_mig:
            return None
        _, sep, profile = self.name.rpartition(" MIG ")
        return profile.strip() if sep else None

    @property
    def model(self) -> str:
        """The GPU model name without the MIG suffix."""
        head, sep, _ = self.name.rpartition(" MIG ")
        return head if sep else self.name


@dataclass(frozen=True)
class GpuProcess:
    """A process holding memory on a device, as NVML reports it (host PID)."""

    pid: int
    device_uuid: str
    used_memory: int
    gpu_instance_id: int | None = None


@dataclass(frozen=True)
class ContainerRef:
    """A container of a pod, named the Kubernetes way."""

    namespace: str
    pod: str
    container: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod}/{self.container}"


@dataclass(frozen=True)
class ContainerShares:
    """What a container was given: meta-device IDs per resource, and its memory envelope."""

    ref: ContainerRef
    pod_uid: str
    container_id: str
    #: Meta-device IDs the kubelet allocated, per resource name.
    device_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Requested memory (shares x share size); the scheduling guarantee.
    guarantee: int = 0
    #: Enforced limit: from the ``gpu-mem-limit.<resource>`` annotation, else the guarantee.
    limit: int = 0


@dataclass(frozen=True)
class ContainerUsage:
    """GPU memory a container uses on one device, with the processes that hold it."""

    shares: ContainerShares
    device_uuid: str
    gpu_instance_id: int | None
    used: int
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Snapshot:
    """One reading of the node: devices, attributed usage, and processes of no known pod."""

    devices: tuple[GpuDevice, ...]
    usage: tuple[ContainerUsage, ...]
    unattributed: tuple[GpuProcess, ...] = ()
    processes: tuple[GpuProcess, ...] = ()

    def used_by(self, ref: ContainerRef) -> int:
        return sum(u.used for u in self.usage if u.shares.ref == ref)
