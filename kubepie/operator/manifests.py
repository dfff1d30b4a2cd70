"""The objects the operator makes for a FileServer, as pure functions: a Secret holding the
per-server key and the file server's configuration, and the Pod running ``kubepie fileserver``
as the user.

The Pod (names equal the FileServer's, so the API refuses a second one):

* runs as the user: ``runAsUser``/``runAsGroup``/``supplementalGroups`` from the spec,
  ``runAsNonRoot``, no privilege escalation, every capability dropped, a read-only root file
  system, seccomp ``RuntimeDefault``, no service-account token, no service links;
* gets the key from the Secret in ``KUBEPIE_SERVER_SECRET`` (the file server removes it from
  its environment at start) and its identity and mounts as a file from the same Secret;
* listens on its Pod IP (``$(POD_IP)``, from the downward API) on :data:`DAV_PORT` and
  :data:`S3_PORT`; ready once the WebDAV port accepts connections;
* mounts each storage area from its volume source at the path the file server serves;
* ``restartPolicy: Never``: a server that exits leaves a failed Pod, which the operator
  replaces (and reports), rather than a restart loop nobody sees.

Both objects are owned by the FileServer (``ownerReferences``, controller), so deleting it
deletes them (garbage collection).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubepie.kube.resources import (
    API_VERSION,
    DAV_PORT,
    KIND,
    LABEL_FILESERVER,
    LABEL_ROLE,
    LABEL_USERNAME,
    ROLE_FILESERVER,
    S3_PORT,
)

SECRET_KEY = "server-secret"  # noqa: S105 (a key name)
CONFIG_KEY = "fileserver.json"
CONFIG_DIR = "/run/kubepie/config"
STATE_DIR = "/run/kubepie/state"
CONTAINER = "fileserver"


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """The operator's settings for every file-server Pod."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] = ("kubepie", "fileserver")
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)


def labels(fileserver: Mapping[str, Any]) -> dict[str, str]:
    """Labels of a FileServer's Secret and Pod (the webhook selects on ``LABEL_ROLE``)."""
    return {
        "app.kubernetes.io/name": "kubepie",
        "app.kubernetes.io/component": "fileserver",
        "app.kubernetes.io/managed-by": "kubepie-operator",
        LABEL_ROLE: ROLE_FILESERVER,
        LABEL_FILESERVER: str(fileserver["metadata"]["name"]),
        LABEL_USERNAME: str(fileserver["spec"]["username"]),
    }


def owner_reference(fileserver: Mapping[str, Any]) -> dict[str, Any]:
    meta = fileserver["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def fileserver_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The backend-mode document of ``kubepie fileserver`` (without the secret, which comes
    from the environment): identity, mounts at their paths, and the state directory."""
    return {
        "identity": {
            "username": spec["username"],
            "uid": spec["uid"],
            "gid": spec["gid"],
            "gids": list(spec.get("gids") or []),
        },
        "mounts": [
            {"name": m["name"], "path": m["path"], "read_only": bool(m.get("readOnly", False))}
            for m in spec.get("mounts") or []
        ],
        "state_dir": STATE_DIR,
    }


def secret_manifest(fileserver: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The FileServer's Secret: the per-server ``key`` and the file server's configuration."""
    config = json.dumps(fileserver_config(fileserver["spec"]), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": fileserver["metadata"]["name"],
            "labels": labels(fileserver),
            "ownerReferences": [owner_reference(fileserver)],
        },
        "type": "Opaque",
        "data": {
            SECRET_KEY: base64.b64encode(key.encode()).decode(),
            CONFIG_KEY: base64.b64encode(config.encode()).decode(),
        },
    }


def secret_key(secret: Mapping[str, Any]) -> str | None:
    """The per-server key held by a Secret made by :func:`secret_manifest`."""
    raw = (secret.get("data") or {}).get(SECRET_KEY)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _volume(index: int, mount: Mapping[str, Any]) -> dict[str, Any]:
    name = f"storage-{index}"
    if "hostPath" in mount:
        return {"name": name, "hostPath": {"path": mount["hostPath"]["path"], "type": "Directory"}}
    if "persistentVolumeClaim" in mount:
        return {
            "name": name,
            "persistentVolumeClaim": {
                "claimName": mount["persistentVolumeClaim"]["claimName"],
                "readOnly": bool(mount.get("readOnly", False)),
            },
        }
    nfs = mount["nfs"]
    return {
        "name": name,
        "nfs": {
            "server": nfs["server"],
            "path": nfs["path"],
            "readOnly": bool(mount.get("readOnly", False)),
        },
    }


def _volume_mount(index: int, mount: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f"storage-{index}",
        "mountPath": mount["path"],
        "readOnly": bool(mount.get("readOnly", False)),
    }
    sub_path = (mount.get("persistentVolumeClaim") or {}).get("subPath")
    if sub_path:
        out["subPath"] = sub_path
    return out


def pod_manifest(fileserver: Mapping[str, Any], template: PodTemplate) -> dict[str, Any]:
    """The FileServer's Pod (see the module docstring for what it guarantees)."""
    meta, spec = fileserver["metadata"], fileserver["spec"]
    name = meta["name"]
    mounts = list(spec.get("mounts") or [])
    resources = spec.get("resources") or template.resources
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.get("image") or template.image,
        "imagePullPolicy": template.image_pull_policy,
        "command": list(template.command),
        "args": [
            "--listen",
            f"$(POD_IP):{DAV_PORT}",
            "--s3-listen",
            f"$(POD_IP):{S3_PORT}",
            "--backend-config",
            f"{CONFIG_DIR}/{CONFIG_KEY}",
        ],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "KUBEPIE_SERVER_SECRET",
                "valueFrom": {"secretKeyRef": {"name": name, "key": SECRET_KEY}},
            },
            {"name": "HOME", "value": STATE_DIR},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        "ports": [
            {"name": "webdav", "containerPort": DAV_PORT, "protocol": "TCP"},
            {"name": "s3", "containerPort": S3_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "tcpSocket": {"port": DAV_PORT},
            "periodSeconds": 2,
            "failureThreshold": 1,
            "timeoutSeconds": 1,
        },
        "resources": {k: dict(v) for k, v in resources.items()},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec["uid"],
            "runAsGroup": spec["gid"],
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            *(_volume_mount(i, m) for i, m in enumerate(mounts)),
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 10,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec["uid"],
            "runAsGroup": spec["gid"],
            "supplementalGroups": sorted(set(spec.get("gids") or [])),
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "config",
                "secret": {
                    "secretName": name,
                    "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
                    "defaultMode": 0o444,
                },
            },
            {"name": "state", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            *(_volume(i, m) for i, m in enumerate(mounts)),
        ],
    }
    if template.node_selector:
        pod_spec["nodeSelector"] = dict(template.node_selector)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": labels(fileserver),
            "ownerReferences": [owner_reference(fileserver)],
            "annotations": {"kubepie.io/fileserver-generation": str(meta.get("generation", 0))},
        },
        "spec": pod_spec,
    }
