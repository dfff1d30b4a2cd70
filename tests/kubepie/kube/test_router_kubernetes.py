"""End to end with ``backend.kind: kubernetes``: the real router (``kubepie serve``, as root,
dropping to its account) creates each user's FileServer through its own ServiceAccount and
RBAC, the operator makes the Pod, the process kubelet runs ``kubepie fileserver`` as the
user, and requests flow through the router to the Pod with the per-server key."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from kubepie.kube.client import KubeApi
from kubepie.kube.errors import NotFound
from kubepie.kube.resources import fileserver_path
from tests.kubepie.kube.conftest import Operator
from tests.kubepie.router.conftest import Router


def bearer(router: Router, user: str) -> dict[str, str]:
    token = router.provider.mint(router.provider.claims_for(user))
    return {"Authorization": f"Bearer {token}"}


async def test_first_request_creates_the_users_fileserver_and_files_are_the_users(
    kube_router: Router, kube_admin: KubeApi, operator: Operator
) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=90) as http:
        put = await http.put(
            f"{kube_router.url}/dav/home/from-k8s.txt",
            content=b"written through a pod\n",
            headers=bearer(kube_router, "alice"),
        )
        assert put.status_code == 201, put.text
        got = await http.get(
            f"{kube_router.url}/dav/home/from-k8s.txt", headers=bearer(kube_router, "alice")
        )
        assert got.text == "written through a pod\n"
        bobs = await http.get(
            f"{kube_router.url}/dav/home/from-k8s.txt", headers=bearer(kube_router, "bob")
        )
        assert bobs.status_code == 404  # bob's home is his own: alice's file is not there
    written = kube_router.home("alice") / "from-k8s.txt"
    assert written.stat().st_uid == 10001
    fs = await kube_admin.get(fileserver_path(operator.namespace, "fs-alice"))
    assert fs["spec"]["uid"] == 10001
    assert fs["status"]["phase"] == "Ready"
    assert fs["status"]["lastActivity"]
    pod = await kube_admin.get(f"/api/v1/namespaces/{operator.namespace}/pods/fs-alice")
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert 20001 in pod["spec"]["securityContext"]["supplementalGroups"]  # physics


async def test_twenty_concurrent_first_requests_make_one_fileserver(
    kube_router: Router, kube_admin: KubeApi, operator: Operator
) -> None:
    headers = bearer(kube_router, "carol")
    async with httpx.AsyncClient(trust_env=False, timeout=90) as http:
        answers = await asyncio.gather(
            *(
                http.request(
                    "PROPFIND", f"{kube_router.url}/dav/home/", headers={**headers, "Depth": "0"}
                )
                for _ in range(20)
            )
        )
    assert [a.status_code for a in answers] == [207] * 20
    servers = await kube_admin.list(
        fileserver_path(operator.namespace), label_selector="kubepie.io/username=carol"
    )
    pods = await kube_admin.list(
        f"/api/v1/namespaces/{operator.namespace}/pods",
        label_selector="kubepie.io/username=carol",
    )
    assert [s["metadata"]["name"] for s in servers] == ["fs-carol"]
    assert [p["metadata"]["name"] for p in pods] == ["fs-carol"]


pytestmark = pytest.mark.root


async def test_a_killed_pod_comes_back_behind_the_router(
    kube_router: Router, kube_admin: KubeApi, operator: Operator
) -> None:
    url = f"{kube_router.url}/dav/home/hello-again.txt"
    async with httpx.AsyncClient(trust_env=False, timeout=90) as http:
        put = await http.put(url, content=b"still here\n", headers=bearer(kube_router, "alice"))
        assert put.status_code in (201, 204), put.text
        path = f"/api/v1/namespaces/{operator.namespace}/pods/fs-alice"
        old = await kube_admin.get(path)
        # not forced: the Pod object stays until the process kubelet has stopped the server
        await kube_admin.delete(path, grace_seconds=1)
        for _ in range(300):
            try:
                if (await kube_admin.get(path))["metadata"]["uid"] != old["metadata"]["uid"]:
                    break
            except NotFound:
                break
            await asyncio.sleep(0.1)
        statuses = []
        for _ in range(300):
            answer = await http.get(url, headers=bearer(kube_router, "alice"))
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert answer.status_code == 200, statuses
        assert answer.text == "still here\n"
    new = await kube_admin.get(path)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert set(statuses[:-1]) <= {502, 503}  # while the Pod was gone: a retryable answer
