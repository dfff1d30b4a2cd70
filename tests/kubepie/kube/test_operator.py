"""``kubepie operator`` against the real control plane, with Pods run by the process kubelet:
a FileServer becomes a Secret and a Pod running ``kubepie fileserver`` as the user; the status,
Events, a dead Pod replaced, a clear Failed reason, PieEat, and a restart without duplicates."""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from identity.models import Identity
from identity.storage import ResolvedMount
from kubepie.kube.client import KubeApi
from kubepie.kube.errors import NotFound
from kubepie.kube.resources import (
    fileserver_name,
    fileserver_object,
    fileserver_path,
    fileserver_spec,
)
from kubepie.operator.manifests import secret_key
from tests.kubepie.kube.conftest import Kubelet, Operator, directory_identity
from tests.kubepie.kube.controlplane import ControlPlane

SECRET_HEADER = "X-KubePie-Server-Secret"


def storage(plane: ControlPlane, user: str, uid: int) -> Path:
    home = plane.workdir / "storage" / "home" / user
    if not home.exists():
        home.mkdir(parents=True)
        (plane.workdir / "storage").chmod(0o755)
        (plane.workdir / "storage" / "home").chmod(0o755)
        (home / "hello.txt").write_text(f"hello {user}\n")
        for path in (home, home / "hello.txt"):
            os.chown(path, uid, uid)
        home.chmod(0o700)
    return home


def identity(user: str, uid: int) -> Identity:
    found = directory_identity(user)
    assert found.uid == uid
    return found


async def until(
    check: Callable[[], Any], what: str, limit: float = 90.0, interval: float = 0.2
) -> Any:
    deadline = asyncio.get_running_loop().time() + limit
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await check()
        except NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what}: not after {limit:g} s (last: {last!r})")


async def create(
    api: KubeApi, namespace: str, user: str, uid: int, mounts: list[ResolvedMount]
) -> str:
    name = fileserver_name(user)
    await api.create(
        fileserver_path(namespace),
        fileserver_object(name, fileserver_spec(identity(user, uid), mounts)),
    )
    return name


async def ready(api: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await api.get(fileserver_path(namespace, name))
        return obj if (obj.get("status") or {}).get("phase") == "Ready" else None

    result: dict[str, Any] = await until(check, f"FileServer {name} Ready")
    return result


async def gone(api: KubeApi, path: str) -> None:
    async def check() -> bool:
        try:
            await api.get(path)
        except NotFound:
            return True
        return False

    await until(check, f"{path} deleted")


async def test_a_fileserver_becomes_a_pod_serving_as_the_user(
    kube_admin: KubeApi, operator: Operator, process_kubelet: Kubelet, control_plane: ControlPlane
) -> None:
    ns = operator.namespace
    home = storage(control_plane, "alice", 10001)
    name = await create(kube_admin, ns, "alice", 10001, [ResolvedMount("home", str(home), False)])
    fs = await ready(kube_admin, ns, name)
    status = fs["status"]
    assert status["observedGeneration"] == fs["metadata"]["generation"]
    assert status["conditions"][0]["type"] == "Ready"
    assert status["conditions"][0]["status"] == "True"
    address = status["address"]
    assert address.startswith("127.0.10.")
    assert address.endswith(":8080")

    pod = await kube_admin.get(f"/api/v1/namespaces/{ns}/pods/{name}")
    assert pod["metadata"]["ownerReferences"][0]["uid"] == fs["metadata"]["uid"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [10001, 20001, 20002]
    secret = await kube_admin.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
    key = secret_key(secret)
    assert key is not None
    assert len(key) >= 32

    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        answer = await http.get(
            f"http://{address}/dav/home/hello.txt", headers={SECRET_HEADER: key}
        )
        assert answer.status_code == 200
        assert answer.text == "hello alice\n"
        refused = await http.get(f"http://{address}/dav/home/hello.txt")
        assert refused.status_code == 401
        wrong = await http.get(
            f"http://{address}/dav/home/hello.txt", headers={SECRET_HEADER: "x" * len(key)}
        )
        assert wrong.status_code == 401
        put = await http.put(
            f"http://{address}/dav/home/new.txt", content=b"data", headers={SECRET_HEADER: key}
        )
        assert put.status_code == 201
    assert (home / "new.txt").stat().st_uid == 10001  # written by the user's process

    async def events() -> set[str] | None:
        found = await kube_admin.list(
            f"/api/v1/namespaces/{ns}/events", field_selector=f"involvedObject.name={name}"
        )
        reasons = {e["reason"] for e in found if e["involvedObject"]["kind"] == "FileServer"}
        return reasons if {"PodCreated", "Ready"} <= reasons else None

    await until(events, "Events PodCreated and Ready on the FileServer")

    # a Pod that dies is replaced, and the FileServer is Ready again on the new one
    old_uid = pod["metadata"]["uid"]
    await kube_admin.delete(f"/api/v1/namespaces/{ns}/pods/{name}", grace_seconds=1)

    async def replaced() -> dict[str, Any] | None:
        new = await kube_admin.get(f"/api/v1/namespaces/{ns}/pods/{name}")
        conditions = {c["type"]: c["status"] for c in new.get("status", {}).get("conditions", [])}
        if new["metadata"]["uid"] != old_uid and conditions.get("Ready") == "True":
            return new
        return None

    await until(replaced, "a new Pod")
    fs = await ready(kube_admin, ns, name)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        again = await http.get(
            f"http://{fs['status']['address']}/dav/home/hello.txt", headers={SECRET_HEADER: key}
        )
    assert again.text == "hello alice\n"

    # PieEat: the router last reported activity long ago, so the FileServer and Pod go away
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    await kube_admin.patch(
        f"{fileserver_path(ns, name)}/status",
        {"status": {"lastActivity": long_ago.strftime("%Y-%m-%dT%H:%M:%SZ")}},
    )
    await gone(kube_admin, fileserver_path(ns, name))
    await gone(kube_admin, f"/api/v1/namespaces/{ns}/pods/{name}")


async def test_a_missing_volume_gives_a_clear_failed_reason(
    kube_admin: KubeApi, operator: Operator
) -> None:
    ns = operator.namespace
    spec = fileserver_spec(identity("bob", 10002), [])
    spec["mounts"] = [
        {"name": "data", "path": "/data", "persistentVolumeClaim": {"claimName": "no-such-claim"}}
    ]
    await kube_admin.create(fileserver_path(ns), fileserver_object("fs-bob", spec))

    async def failed() -> dict[str, Any] | None:
        obj = await kube_admin.get(fileserver_path(ns, "fs-bob"))
        return obj["status"] if (obj.get("status") or {}).get("phase") == "Failed" else None

    status = await until(failed, "fs-bob Failed")
    assert status["reason"] == "Unschedulable"
    assert 'persistentvolumeclaim "no-such-claim" not found' in status["message"]
    assert status["conditions"][0]["status"] == "False"
    await kube_admin.delete(fileserver_path(ns, "fs-bob"))


async def test_an_operator_restarted_mid_spawn_makes_no_duplicate(
    kube_admin: KubeApi, operator: Operator, control_plane: ControlPlane
) -> None:
    ns = operator.namespace
    home = storage(control_plane, "carol", 10003)
    name = await create(kube_admin, ns, "carol", 10003, [ResolvedMount("home", str(home), False)])
    await until(
        lambda: kube_admin.get(f"/api/v1/namespaces/{ns}/secrets/{name}"),
        "carol's Secret",
        interval=0.02,
    )
    operator.restart()
    fs = await ready(kube_admin, ns, name)
    pods = await kube_admin.list(
        f"/api/v1/namespaces/{ns}/pods", label_selector=f"kubepie.io/fileserver={name}"
    )
    secrets = await kube_admin.list(
        f"/api/v1/namespaces/{ns}/secrets", label_selector=f"kubepie.io/fileserver={name}"
    )
    assert len(pods) == 1
    assert len(secrets) == 1
    assert fs["status"]["address"] == f"{pods[0]['status']['podIP']}:8080"
    await kube_admin.delete(fileserver_path(ns, name))


pytestmark = pytest.mark.root
