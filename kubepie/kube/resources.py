"""The ``FileServer`` custom resource (``charts/kubepie/crds/fileserver.yaml``) as pure data:
its names and paths, the spec the router asks for, and the status the operator reports.

A user's FileServer is named from the user (:func:`fileserver_name`), so two routers that race
to create it collide on the name and the loser reads the winner's object: there is never a
second server for one user.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from identity.models import Identity
from identity.storage import ResolvedMount

GROUP = "kubepie.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FileServer"
PLURAL = "fileservers"

#: Labels on every object made for a FileServer. ``role`` selects the Pods the admission
#: webhook checks; ``username`` names whose ids they must carry.
LABEL_ROLE = "kubepie.io/role"
ROLE_FILESERVER = "fileserver"
LABEL_FILESERVER = "kubepie.io/fileserver"
LABEL_USERNAME = "kubepie.io/username"

#: Container ports of a file-server Pod.
DAV_PORT = 8080
S3_PORT = 9000

Phase = Literal["Pending", "Starting", "Ready", "Failed"]

_LABEL_SAFE = re.compile(r"[^a-z0-9-]+")


def object_path(
    api_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The REST path of a collection or object: ``v1`` → ``/api/v1/...``, else ``/apis/...``."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
    return base


def fileserver_path(namespace: str, name: str | None = None) -> str:
    return object_path(API_VERSION, PLURAL, namespace, name)


def fileserver_name(username: str) -> str:
    """``fs-<username>`` when the name is a DNS label as it is, else the label-safe part and
    a hash of the whole name (so ``a.b`` and ``a-b`` never share a server). At most 63
    characters: it also names the Pod and the Secret."""
    plain = f"fs-{username}"
    if re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", username) and len(plain) <= 63:
        return plain
    digest = hashlib.sha256(username.encode()).hexdigest()[:10]
    safe = _LABEL_SAFE.sub("-", username.lower()).strip("-")[:40].strip("-")
    return f"fs-{safe}-{digest}" if safe else f"fs-{digest}"


def fileserver_spec(identity: Identity, mounts: Sequence[ResolvedMount]) -> dict[str, Any]:
    """The spec of ``identity``'s FileServer: its ids and mounts, each a ``hostPath`` of the
    same path (the path the file server sees equals the node's)."""
    return {
        "username": identity.username,
        "uid": identity.uid,
        "gid": identity.gid,
        "gids": sorted(set(identity.gids)),
        "mounts": [
            {"name": m.name, "path": m.path, "readOnly": m.read_only, "hostPath": {"path": m.path}}
            for m in mounts
        ],
    }


def fileserver_object(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "kubepie",
                "app.kubernetes.io/component": "fileserver",
                LABEL_USERNAME: str(spec["username"]),
            },
        },
        "spec": dict(spec),
    }


@dataclass(frozen=True, slots=True)
class FileServerState:
    """What a reader (the router) needs from a FileServer's status."""

    phase: Phase | None
    reason: str
    address: str | None
    s3_address: str | None
    #: The status describes the current spec (``observedGeneration == generation``).
    current: bool

    @property
    def ready(self) -> bool:
        return self.phase == "Ready" and self.current and self.address is not None


def read_state(obj: Mapping[str, Any]) -> FileServerState:
    """The state of a FileServer object as the API returned it."""
    status = obj.get("status") or {}
    phase = status.get("phase")
    generation = (obj.get("metadata") or {}).get("generation")
    return FileServerState(
        phase=phase if phase in ("Pending", "Starting", "Ready", "Failed") else None,
        reason=str(status.get("reason") or ""),
        address=status.get("address") or None,
        s3_address=status.get("s3Address") or None,
        current=generation is not None and status.get("observedGeneration") == generation,
    )
