"""End to end with ``backend.kind: kubernetes``: the real router (``kubepie serve``, as root,
dropping to its account) creates each user's FileServer through its own ServiceAccount and
RBAC, the operator makes the Pod, the process kubelet runs ``kubepie fileserver`` as the
user, and requests flow through the router to the Pod with the per-server key."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kubepie.kube.client import KubeApi
from kubepie.kube.resources import fileserver_path
from tests.fixtures.oidc import OidcProvider
from tests.kubepie.kube.conftest import Kubelet, Operator
from tests.kubepie.kube.controlplane import ControlPlane
from tests.kubepie.router.conftest import CLAIMS_IDENTITY, Router, start_router

ROUTER_ROLE = {
    "metadata": {"name": "kubepie-router"},
    "rules": [
        {
            "apiGroups": ["kubepie.io"],
            "resources": ["fileservers"],
            "verbs": ["get", "create", "patch"],
        },
        {"apiGroups": ["kubepie.io"], "resources": ["fileservers/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    ],
}


@pytest.fixture(scope="module")
async def kube_router(
    oidc_provider: OidcProvider,
    router_area: Path,
    control_plane: ControlPlane,
    kube_admin: KubeApi,
    operator: Operator,
    process_kubelet: Kubelet,
) -> AsyncIterator[Router]:
    ns = operator.namespace
    await kube_admin.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "kubepie-router"}}
    )
    await kube_admin.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", ROUTER_ROLE
    )
    await kube_admin.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "metadata": {"name": "kubepie-router"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "kubepie-router",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "kubepie-router", "namespace": ns}],
        },
    )
    kubeconfig = control_plane.service_account_kubeconfig(
        control_plane.workdir / "router.kubeconfig", ns, "kubepie-router", embed_ca=False
    )
    os.chown(kubeconfig, 999 if _has_user("kubepie") else 0, -1)
    router = start_router(
        oidc_provider,
        router_area,
        name="router-k8s",
        identity=CLAIMS_IDENTITY,
        extra={
            "backend": {
                "kind": "kubernetes",
                "start_timeout": 60,
                "kubernetes": {"namespace": ns, "kubeconfig": str(kubeconfig)},
            }
        },
    )
    try:
        yield router
    finally:
        router.stop()


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


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
