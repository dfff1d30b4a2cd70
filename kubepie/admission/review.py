"""What PieSec decides about a Pod: pure functions of the Pod, the requester and the user's
directory entry.

*Mutating* (:func:`security_patch`): a handled Pod gets the pod-level ``runAsUser``,
``runAsGroup``, ``supplementalGroups`` and ``runAsNonRoot`` of the user named by its username
label, from the directory (never from the Pod or the requester).

*Validating* (:func:`check`): a handled Pod is refused unless the requester may create such
Pods (the operator's ServiceAccount for file servers, the Hub's for Hub Pods), the user exists,
every uid and gid in it (pod and container level) equals the directory's, none is 0 or below
``min_uid``, no container is privileged or adds capabilities, it shares no host namespace
(PID, network, IPC), and every hostPath volume lies inside one of the user's storage mounts.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from identity.models import Identity
from identity.storage import MountSpec, resolve_mounts
from kubepie.admission.errors import Refused


@dataclass(frozen=True, slots=True)
class Policy:
    """The webhook's settings."""

    min_uid: int
    #: Users (``system:serviceaccount:ns:name``) allowed to create Pods of this kind.
    creators: frozenset[str]
    username_label: str
    mounts: tuple[MountSpec, ...]


def username_of(pod: Mapping[str, Any], policy: Policy) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    name = labels.get(policy.username_label)
    if not isinstance(name, str) or not name:
        raise Refused(f"the Pod has no {policy.username_label} label naming its user")
    return name


def security_patch(user: Identity) -> dict[str, Any]:
    """The pod-level ``securityContext`` fields a handled Pod gets (a merge into it)."""
    return {
        "runAsUser": user.uid,
        "runAsGroup": user.gid,
        "supplementalGroups": list(user.gids),
        "runAsNonRoot": True,
    }


def _containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _inside(path: str, roots: Sequence[str]) -> bool:
    normal = posixpath.normpath(path)
    return any(normal == root or normal.startswith(root.rstrip("/") + "/") for root in roots)


def check(pod: Mapping[str, Any], requester: str, user: Identity | None, policy: Policy) -> None:
    """Raise :class:`Refused` naming the first reason ``pod`` may not be created."""
    if requester not in policy.creators:
        raise Refused(
            f"{requester} may not create KubePie Pods: only "
            f"{', '.join(sorted(policy.creators)) or 'nobody'} may"
        )
    name = username_of(pod, policy)
    if user is None:
        raise Refused(f"user {name!r} is not in the directory")
    spec = pod.get("spec") or {}
    for key in ("hostPID", "hostNetwork", "hostIPC"):
        if spec.get(key):
            raise Refused(f"{key} is not allowed")
    contexts: list[tuple[str, Mapping[str, Any]]] = [("the Pod", spec.get("securityContext") or {})]
    for container in _containers(spec):
        where = f"container {container.get('name', '?')}"
        context = container.get("securityContext") or {}
        contexts.append((where, context))
        if context.get("privileged"):
            raise Refused(f"{where} is privileged")
        if (context.get("capabilities") or {}).get("add"):
            raise Refused(f"{where} adds capabilities {context['capabilities']['add']}")
        if context.get("allowPrivilegeEscalation") is True:
            raise Refused(f"{where} allows privilege escalation")
    expected = {"runAsUser": user.uid, "runAsGroup": user.gid}
    for where, context in contexts:
        for key, want in expected.items():
            value = context.get(key)
            if value is None:
                continue
            if value == 0 or value < policy.min_uid:
                raise Refused(f"{where}: {key} {value} is refused (0 or below {policy.min_uid})")
            if value != want:
                raise Refused(f"{where}: {key} {value} is not {name}'s {want}")
    pod_context = spec.get("securityContext") or {}
    if pod_context.get("runAsUser") is None:
        raise Refused("the Pod sets no runAsUser")
    groups = pod_context.get("supplementalGroups") or []
    if 0 in groups or sorted(set(groups)) != sorted(set(user.gids)):
        raise Refused(f"the Pod's supplementalGroups {groups} are not {name}'s {list(user.gids)}")
    if pod_context.get("fsGroup") is not None and pod_context["fsGroup"] not in user.gids:
        raise Refused(f"the Pod's fsGroup {pod_context['fsGroup']} is not one of {name}'s groups")
    roots = [m.path for m in resolve_mounts(policy.mounts, user)]
    for volume in spec.get("volumes") or []:
        host = volume.get("hostPath")
        if host is not None and not _inside(str(host.get("path", "")), roots):
            raise Refused(
                f"hostPath {host.get('path')!r} (volume {volume.get('name')}) is outside "
                f"{name}'s storage mounts"
            )
