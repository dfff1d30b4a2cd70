"""The process kubelet double: a Pod bound by the real scheduler runs as a local process with
the Pod's ids, groups, no_new_privs and no capabilities, its volumes at their paths and a
read-only root, on its own 127.x address; deleting the Pod stops it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from kubepie.kube.client import KubeApi
from kubepie.kube.errors import NotFound
from tests.kubepie.kube.conftest import Kubelet, make_namespace

SCRIPT = (
    "id; grep -E '^(NoNewPrivs|CapBnd|CapEff)' /proc/self/status; "
    "cat /run/cfg/greeting; echo; "
    "touch /probe-root 2>/dev/null && echo root-writable || echo root-read-only; "
    "touch $(DATA)/written && echo data-writable; "
    "touch /tmp/scratch && echo tmp-writable; "
    "exec python3 -m http.server --bind $(POD_IP) 8080 --directory $(DATA)"
)


def pod(data: Path) -> dict[str, Any]:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "supplementalGroups": [10001, 20001],
            },
            "containers": [
                {
                    "name": "web",
                    "image": "python:3",
                    "command": ["sh", "-c", SCRIPT],
                    "env": [
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                        {"name": "DATA", "value": str(data)},
                    ],
                    "readinessProbe": {"tcpSocket": {"port": 8080}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "data", "mountPath": str(data)},
                        {"name": "cfg", "mountPath": "/run/cfg", "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "data", "hostPath": {"path": str(data), "type": "Directory"}},
                {"name": "cfg", "secret": {"secretName": "cfg"}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


async def wait_ready(api: KubeApi, path: str) -> dict[str, Any]:
    for _ in range(600):
        obj = await api.get(path)
        conditions = {c["type"]: c["status"] for c in obj["status"].get("conditions", [])}
        if conditions.get("Ready") == "True":
            return obj
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{path} not Ready: {obj['status']}")


async def test_a_pod_runs_as_its_security_context_says(
    kube_admin: KubeApi, process_kubelet: Kubelet, tmp_path: Path
) -> None:
    namespace = await make_namespace(kube_admin, "kubelet-check")
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    (data / "hello.txt").write_text("hello from the host\n")
    tmp_path.chmod(0o755)  # noqa: ASYNC240 (test set-up)
    await kube_admin.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "cfg"}, "stringData": {"greeting": "hi-from-secret"}},
    )
    await kube_admin.create(f"/api/v1/namespaces/{namespace}/pods", pod(data))
    path = f"/api/v1/namespaces/{namespace}/pods/web"
    running = await wait_ready(kube_admin, path)
    assert running["spec"]["nodeName"] == "process-node"  # bound by the real scheduler
    ip = running["status"]["podIP"]
    assert ip.startswith("127.0.10.")
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.get(f"http://{ip}:8080/hello.txt")
    assert answer.text == "hello from the host\n"

    log = process_kubelet.container_log(namespace, "web")
    assert "uid=10001 gid=10001 groups=10001,20001" in log
    assert "NoNewPrivs:\t1" in log
    assert "CapBnd:\t0000000000000000" in log
    assert "CapEff:\t0000000000000000" in log
    assert "hi-from-secret" in log
    assert "root-read-only" in log
    assert "data-writable" in log
    assert "tmp-writable" in log
    assert (data / "written").stat().st_uid == 10001
    assert not Path("/tmp/scratch").exists()  # noqa: ASYNC240 (the Pod's /tmp is its emptyDir)

    await kube_admin.delete(path, grace_seconds=5)
    for _ in range(300):
        try:
            await kube_admin.get(path)
        except NotFound:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the Pod was not removed")
    async with httpx.AsyncClient(trust_env=False) as http:
        try:
            await http.get(f"http://{ip}:8080/hello.txt", timeout=2)
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("the Pod's process still serves after deletion")
