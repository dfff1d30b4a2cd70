"""Which container a host process belongs to, from ``/proc/<pid>/cgroup``.

The kubelet names a container's cgroup after its pod UID and the runtime's container ID.
:func:`parse_cgroup` reads that from the text of ``/proc/<pid>/cgroup`` for both cgroup
versions, both kubelet cgroup drivers and the usual runtimes::

    # cgroup v2, systemd driver (containerd, CRI-O, docker via cri-dockerd)
    0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
    0::/kubepods.slice/kubepods-pod<uid>.slice/crio-<id>.scope
    0::/kubepods.slice/kubepods-pod<uid>.slice/crio-<id>.scope/container     # crun
    # cgroup v1 (memory controller line), systemd driver, docker
    9:memory:/kubepods.slice/.../kubepods-besteffort-pod<uid>.slice/docker-<id>.scope
    # cgroupfs driver, either version
    0::/kubepods/burstable/pod<uid>/<id>
    # containerd's systemd driver on cgroup v1 (slice:prefix:id)
    1:name=systemd:/system.slice/containerd.service/kubepods-burstable-pod<uid>.slice:cri-containerd:<id>

Parsing is pure; :class:`ProcCgroupReader` only reads the file under a configurable proc root
(the host's ``/proc`` when the agent runs with ``hostPID``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Runtime = Literal["containerd", "cri-o", "docker", "unknown"]

_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?"
)
_CONTAINER = re.compile(
    r"(?:(?P<prefix>cri-containerd|crio|docker|cri-dockerd)[-:])?(?P<id>[0-9a-f]{64})(?:\.scope)?$"
)
_RUNTIMES: dict[str, Runtime] = {
    "cri-containerd": "containerd",
    "crio": "cri-o",
    "docker": "docker",
    "cri-dockerd": "docker",
}


@dataclass(frozen=True)
class CgroupContainer:
    """A container as its cgroup names it: the pod UID and the runtime's container ID."""

    pod_uid: str
    container_id: str
    runtime: Runtime = "unknown"
    cgroup_version: int = 2


def _parse_path(path: str, version: int) -> CgroupContainer | None:
    if "kubepods" not in path:
        return None
    pod = None
    for match in _POD_UID.finditer(path):
        pod = match.group(1).replace("_", "-")
    parts = path.rstrip("/").split("/")
    # The container's own cgroup is the last component, or the one before a runtime's
    # sub-cgroup (crun under CRI-O on cgroup v2 puts processes in ".../crio-<id>.scope/container").
    for last in reversed(parts[-2:]):
        # containerd on cgroup v1 with the systemd driver: "<pod slice>:cri-containerd:<id>"
        if last.count(":") == 2:
            slice_part, prefix, cid = last.split(":")
            last = f"{prefix}-{cid}"
            for match in _POD_UID.finditer(slice_part):
                pod = match.group(1).replace("_", "-")
        container = _CONTAINER.fullmatch(last)
        if container is not None:
            break
    if pod is None or container is None:
        return None
    runtime = _RUNTIMES.get(container.group("prefix") or "", "unknown")
    return CgroupContainer(pod, container.group("id"), runtime, version)


def parse_cgroup(text: str) -> CgroupContainer | None:
    """The container of a process from its ``/proc/<pid>/cgroup``; ``None`` outside pods.

    cgroup v2 has one ``0::<path>`` line. On v1 the ``memory`` (else ``pids``, ``cpu``)
    controller line is preferred, then any line naming a kubepods cgroup.
    """
    v1: dict[str, str] = {}
    for line in text.splitlines():
        hierarchy, sep, rest = line.partition(":")
        controllers, sep2, path = rest.partition(":")
        if not (sep and sep2):
            continue
        if hierarchy == "0" and controllers == "":
            found = _parse_path(path, 2)
            if found is not None:
                return found
            continue
        for controller in controllers.split(","):
            v1.setdefault(controller, path)
    ordered = [v1[c] for c in ("memory", "pids", "cpu", "name=systemd") if c in v1]
    for path in [*ordered, *v1.values()]:
        found = _parse_path(path, 1)
        if found is not None:
            return found
    return None


class ContainerResolver(Protocol):
    """Maps a host PID to its container, or ``None`` for processes outside pods."""

    def container_of(self, pid: int) -> CgroupContainer | None: ...


class ProcCgroupReader:
    """:class:`ContainerResolver` reading ``<proc_root>/<pid>/cgroup``."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self.proc_root = proc_root

    def container_of(self, pid: int) -> CgroupContainer | None:
        try:
            text = (self.proc_root / str(pid) / "cgroup").read_text()
        except OSError:
            return None  # the process exited, or is not visible from here
        return parse_cgroup(text)


class OverrideResolver:
    """Fixed PID → container entries in front of another resolver.

    For nodes without Kubernetes (``scripts/gpu-check``), where a process is declared to be a
    container rather than found through its cgroup.
    """

    def __init__(
        self, overrides: Mapping[int, CgroupContainer], fallback: ContainerResolver | None = None
    ) -> None:
        self.overrides = dict(overrides)
        self.fallback = fallback

    def container_of(self, pid: int) -> CgroupContainer | None:
        if pid in self.overrides:
            return self.overrides[pid]
        return self.fallback.container_of(pid) if self.fallback else None
