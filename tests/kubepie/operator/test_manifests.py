"""The operator's Pod and Secret as pure functions: what the Pod runs as and may do, and that
every object is valid for current Kubernetes (``kubernetes-validate --strict``)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from kubepie.operator.manifests import (
    PodTemplate,
    fileserver_config,
    pod_manifest,
    secret_key,
    secret_manifest,
)

#: The newest Kubernetes version kubernetes-validate knows (it defaults to it).
KUBERNETES_VERSION = "1.37.0"
CRD_FILE = Path(__file__).resolve().parents[3] / "charts" / "kubepie" / "crds" / "fileserver.yaml"

FILESERVER: dict[str, Any] = {
    "apiVersion": "kubepie.io/v1alpha1",
    "kind": "FileServer",
    "metadata": {
        "name": "fs-alice",
        "uid": "0b9e6a1c-1111-2222-3333-444455556666",
        "generation": 3,
    },
    "spec": {
        "username": "alice",
        "uid": 10001,
        "gid": 10001,
        "gids": [20001, 10001],
        "mounts": [
            {
                "name": "home",
                "path": "/home/alice",
                "readOnly": False,
                "hostPath": {"path": "/home/alice"},
            },
            {
                "name": "data",
                "path": "/data",
                "readOnly": True,
                "nfs": {"server": "nas", "path": "/export/data"},
            },
            {
                "name": "group-physics",
                "path": "/group/physics",
                "persistentVolumeClaim": {"claimName": "groups", "subPath": "physics"},
            },
        ],
    },
}
TEMPLATE = PodTemplate(
    image="registry.example/kubepie:1.0",
    resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
)


def test_pod_runs_as_the_user_with_nothing_more() -> None:
    pod = pod_manifest(FILESERVER, TEMPLATE)
    spec = pod["spec"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "supplementalGroups": [10001, 20001],
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert "hostNetwork" not in spec
    assert "hostPID" not in spec
    assert container["resources"] == TEMPLATE.resources
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert container["command"] == ["kubepie", "fileserver"]
    assert container["args"][:2] == ["--listen", "$(POD_IP):8080"]
    secret_env = [e for e in container["env"] if e["name"] == "KUBEPIE_SERVER_SECRET"]
    assert secret_env == [
        {
            "name": "KUBEPIE_SERVER_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "fs-alice", "key": "server-secret"}},
        }
    ]
    owner = pod["metadata"]["ownerReferences"]
    assert owner == [
        {
            "apiVersion": "kubepie.io/v1alpha1",
            "kind": "FileServer",
            "name": "fs-alice",
            "uid": FILESERVER["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert pod["metadata"]["labels"]["kubepie.io/role"] == "fileserver"
    assert pod["metadata"]["labels"]["kubepie.io/username"] == "alice"


def test_each_mount_comes_from_its_volume_source_at_its_path() -> None:
    pod = pod_manifest(FILESERVER, TEMPLATE)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert volumes["storage-0"]["hostPath"] == {"path": "/home/alice", "type": "Directory"}
    assert mounts["storage-0"] == {
        "name": "storage-0",
        "mountPath": "/home/alice",
        "readOnly": False,
    }
    assert volumes["storage-1"]["nfs"] == {
        "server": "nas",
        "path": "/export/data",
        "readOnly": True,
    }
    assert mounts["storage-1"]["readOnly"] is True
    assert volumes["storage-2"]["persistentVolumeClaim"]["claimName"] == "groups"
    assert mounts["storage-2"]["subPath"] == "physics"
    assert mounts["config"] == {
        "name": "config",
        "mountPath": "/run/kubepie/config",
        "readOnly": True,
    }


def test_secret_holds_the_key_and_the_config_but_the_config_holds_no_key() -> None:
    secret = secret_manifest(FILESERVER, "k" * 43)
    assert secret_key(secret) == "k" * 43
    config = json.loads(base64.b64decode(secret["data"]["fileserver.json"]))
    assert config == fileserver_config(FILESERVER["spec"])
    assert "secret" not in config
    assert config["identity"] == {
        "username": "alice",
        "uid": 10001,
        "gid": 10001,
        "gids": [20001, 10001],
    }
    assert config["mounts"][1] == {"name": "data", "path": "/data", "read_only": True}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == FILESERVER["metadata"]["uid"]
    assert secret_key({"data": {"server-secret": "not base64!"}}) is None


def test_every_object_is_valid_for_current_kubernetes(tmp_path: Path) -> None:
    documents = [
        pod_manifest(FILESERVER, TEMPLATE),
        secret_manifest(FILESERVER, "k" * 43),
        *yaml.safe_load_all(CRD_FILE.read_text()),
    ]
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("INFO") == len(documents), result.stdout
    # and a broken Pod is caught, so the check above can fail
    broken = pod_manifest(FILESERVER, TEMPLATE)
    broken["spec"]["containers"][0]["securityContext"]["runAsUsr"] = 1
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "runAsUsr" in result.stdout + result.stderr
