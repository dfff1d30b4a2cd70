"""Containers on this node, their meta-devices and their memory envelope.

Three sources meet here, each behind a small Protocol:

* :class:`PodDirectory` lists the pods of this node with their UID, annotations and the
  runtime container IDs of their containers (the Kubernetes API, see :mod:`gpu.kube`);
* :class:`DeviceAssignments` says which meta-devices the kubelet gave each container (the
  kubelet pod-resources API, see :mod:`gpu.podresources`);
* a :class:`~gpu.cgroups.ContainerResolver` maps host PIDs to container IDs.

:func:`join_shares` (pure) combines the first two into :class:`~gpu.models.ContainerShares`
keyed by ``(pod UID, container ID)``, which is what a cgroup names. The limit comes from the
pod annotation ``gpu-mem-limit.<resource>`` (in shares) when present and not below the
request, else it equals the guarantee.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gpu.metadevices import guarantee_bytes
from gpu.models import ContainerRef, ContainerShares

LIMIT_ANNOTATION_PREFIX = "gpu-mem-limit."

#: ``(pod UID, container ID)``, as a cgroup path names a container.
ContainerKey = tuple[str, str]


@dataclass(frozen=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: Runtime container ID (without the ``containerd://`` scheme) → container name.
    containers: Mapping[str, str] = field(default_factory=dict)


class PodDirectory(Protocol):
    async def pods(self) -> list[PodInfo]: ...


class DeviceAssignments(Protocol):
    async def assignments(self) -> dict[ContainerRef, dict[str, tuple[str, ...]]]:
        """Device IDs per resource name, for each container that holds any."""
        ...


def strip_scheme(container_id: str) -> str:
    """``containerd://abc`` → ``abc`` (pod status carries the runtime as a URL scheme)."""
    return container_id.partition("://")[2] or container_id


def limit_shares(annotations: Mapping[str, str], resource: str) -> int | None:
    """The ``gpu-mem-limit.<resource>`` annotation as a share count, if valid."""
    value = annotations.get(LIMIT_ANNOTATION_PREFIX + resource, "").strip()
    return int(value) if value.isdigit() else None


def container_envelope(
    device_ids: Mapping[str, Sequence[str]], annotations: Mapping[str, str]
) -> tuple[int, int]:
    """``(guarantee, limit)`` in bytes for a container's meta-devices."""
    guarantee = limit = 0
    for resource, ids in device_ids.items():
        promised = guarantee_bytes(ids)
        guarantee += promised
        shares = limit_shares(annotations, resource)
        if shares is None or not ids:
            limit += promised
        else:
            per_share = promised // len(ids)
            limit += max(promised, shares * per_share)
    return guarantee, limit


def join_shares(
    pods: Iterable[PodInfo],
    assignments: Mapping[ContainerRef, Mapping[str, Sequence[str]]],
    resources: Iterable[str],
) -> dict[ContainerKey, ContainerShares]:
    """Every container of ``pods`` that holds meta-devices of ``resources``."""
    wanted = set(resources)
    joined: dict[ContainerKey, ContainerShares] = {}
    for pod in pods:
        for container_id, name in pod.containers.items():
            ref = ContainerRef(pod.namespace, pod.name, name)
            ids = {r: tuple(i) for r, i in assignments.get(ref, {}).items() if r in wanted and i}
            if not ids:
                continue
            guarantee, limit = container_envelope(ids, pod.annotations)
            key = (pod.uid, strip_scheme(container_id))
            joined[key] = ContainerShares(ref, pod.uid, key[1], ids, guarantee, limit)
    return joined


class StaticPods:
    """:class:`PodDirectory` over a fixed list (nodes without a Kubernetes API)."""

    def __init__(self, pods: Iterable[PodInfo]) -> None:
        self._pods = list(pods)

    async def pods(self) -> list[PodInfo]:
        return list(self._pods)


class StaticAssignments:
    """:class:`DeviceAssignments` over a fixed mapping (nodes without a kubelet)."""

    def __init__(self, assignments: Mapping[ContainerRef, Mapping[str, Sequence[str]]]) -> None:
        self._assignments = {
            ref: {r: tuple(ids) for r, ids in by.items()} for ref, by in assignments.items()
        }

    async def assignments(self) -> dict[ContainerRef, dict[str, tuple[str, ...]]]:
        return {ref: dict(by) for ref, by in self._assignments.items()}
