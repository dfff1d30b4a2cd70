"""Pods for GPU tests: static pod directory and assignments, and a fake /proc with cgroups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpu.models import ContainerRef
from gpu.workloads import LIMIT_ANNOTATION_PREFIX, PodInfo, StaticAssignments, StaticPods
from tests.gpu.fakes import H100

GPU_RESOURCE = "kubepie.io/gpu-shares"
SHARE_MB = 20480  # an 80 GiB H100 in 4 shares


@dataclass
class Pod:
    namespace: str
    name: str
    uid_prefix: str
    shares: int
    limit_shares: int | None = None
    device: str = H100
    container: str = "main"

    @property
    def uid(self) -> str:
        return f"{self.uid_prefix}-0000-4000-8000-000000000000"

    @property
    def container_id(self) -> str:
        return (self.uid_prefix * 8)[:64]

    @property
    def ref(self) -> ContainerRef:
        return ContainerRef(self.namespace, self.name, self.container)

    def device_ids(self, first: int = 0) -> list[str]:
        return [f"{self.device}-m{SHARE_MB}-{first + n}" for n in range(self.shares)]

    def info(self) -> PodInfo:
        annotations = {}
        if self.limit_shares is not None:
            annotations[LIMIT_ANNOTATION_PREFIX + GPU_RESOURCE] = str(self.limit_shares)
        return PodInfo(
            self.uid,
            self.namespace,
            self.name,
            annotations,
            {f"containerd://{self.container_id}": self.container},
        )


def static_sources(pods: Sequence[Pod]) -> tuple[StaticPods, StaticAssignments]:
    first = 0
    assignments = {}
    for pod in pods:
        assignments[pod.ref] = {GPU_RESOURCE: pod.device_ids(first)}
        first += pod.shares
    return StaticPods(p.info() for p in pods), StaticAssignments(assignments)


def cgroup_line(pod: Pod) -> str:
    uid = pod.uid.replace("-", "_")
    return (
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/"
        f"cri-containerd-{pod.container_id}.scope\n"
    )


def fake_proc_root(root: Path, pods: Sequence[Pod], pid_of: Mapping[str, int]) -> Path:
    """``<root>/<pid>/cgroup`` naming each pod's container, for the PIDs given per pod name."""
    by_name = {p.name: p for p in pods}
    for name, pid in pid_of.items():
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "cgroup").write_text(cgroup_line(by_name[name]))
        (root / str(pid) / "comm").write_text(f"{name}-worker\n")
    return root
