"""The operator's NSS sync writes the directory into a ConfigMap, only on change; and every
object the operator keeps in the cluster (ConfigMap, webhook configurations, Pod, Secret,
as the API returns them) is valid for current Kubernetes (``kubernetes-validate --strict``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from identity.models import Identity
from identity.storage import ResolvedMount
from kubepie.kube.client import KubeApi
from kubepie.kube.errors import NotFound
from kubepie.kube.resources import fileserver_object, fileserver_path, fileserver_spec
from tests.kubepie.kube.conftest import DIRECTORY, Operator
from tests.kubepie.kube.controlplane import ControlPlane

KUBERNETES_VERSION = "1.37.0"


async def configmap(api: KubeApi, namespace: str) -> dict[str, Any]:
    for _ in range(300):
        try:
            return await api.get(f"/api/v1/namespaces/{namespace}/configmaps/kubepie-nss")
        except NotFound:
            await asyncio.sleep(0.1)
    raise AssertionError("no NSS ConfigMap")


async def test_nss_configmap_follows_the_directory_and_is_written_only_on_change(
    kube_admin: KubeApi, operator: Operator
) -> None:
    first = await configmap(kube_admin, operator.namespace)
    assert "alice:x:10001:10001::/home/alice:/bin/sh\n" in first["data"]["passwd"]
    assert "beamline-x:x:20002:alice,carol\n" in first["data"]["group"]
    await asyncio.sleep(3.5)  # three sync intervals
    again = await configmap(kube_admin, operator.namespace)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]

    changed = {**DIRECTORY, "users": {**DIRECTORY["users"]}}
    changed["users"]["erin"] = {"uid": 10005, "gid": 10005, "home": "/home/erin"}
    operator.directory.write_text(yaml.safe_dump(changed))
    try:
        for _ in range(100):
            latest = await configmap(kube_admin, operator.namespace)
            if "erin:x:10005" in latest["data"]["passwd"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the ConfigMap did not follow the directory")
    finally:
        operator.directory.write_text(yaml.safe_dump(DIRECTORY))


async def test_objects_in_the_cluster_are_valid_for_current_kubernetes(
    kube_admin: KubeApi, operator: Operator, control_plane: ControlPlane, tmp_path: Path
) -> None:
    ns = operator.namespace
    home = control_plane.workdir / "storage" / "home" / "frank"
    home.mkdir(parents=True, exist_ok=True)
    frank = Identity("directory", "frank", "frank", 10006, 10006, (10006,), ("frank",))
    spec = fileserver_spec(frank, [ResolvedMount("home", str(home), False)])
    await kube_admin.create(fileserver_path(ns), fileserver_object("fs-frank", spec))
    for _ in range(300):
        try:
            pod = await kube_admin.get(f"/api/v1/namespaces/{ns}/pods/fs-frank")
            break
        except NotFound:
            await asyncio.sleep(0.1)
    secret = await kube_admin.get(f"/api/v1/namespaces/{ns}/secrets/fs-frank")
    admission = "/apis/admissionregistration.k8s.io/v1"
    objects = [
        pod,
        secret,
        await configmap(kube_admin, ns),
        await kube_admin.get(f"{admission}/mutatingwebhookconfigurations/kubepie.io"),
        await kube_admin.get(f"{admission}/validatingwebhookconfigurations/kubepie.io"),
    ]
    for obj in objects:
        obj.pop("status", None)
        obj["metadata"].pop("managedFields", None)
    hooks = objects[3]["webhooks"] + objects[4]["webhooks"]
    assert {h["failurePolicy"] for h in hooks} == {"Fail"}
    assert all(h["clientConfig"]["caBundle"] for h in hooks)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = await asyncio.to_thread(
        subprocess.run,
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
    assert result.stdout.count("passed") == len(objects), result.stdout
    await kube_admin.delete(fileserver_path(ns, "fs-frank"))
