"""The control-plane fixture is the real thing: objects persist, the scheduler and the
controller-manager act, and RBAC refuses a user without grants with the API's own message."""

from __future__ import annotations

import asyncio

import pytest

from kubepie.kube.client import KubeApi
from kubepie.kube.errors import Forbidden
from tests.kubepie.kube.conftest import make_namespace

POD = {
    "metadata": {"name": "probe"},
    "spec": {
        "automountServiceAccountToken": False,
        "nodeSelector": {"kubepie.io/no-such-node": "true"},  # so the scheduler must refuse it
        "containers": [{"name": "c", "image": "example.invalid/none:1", "command": ["true"]}],
    },
}


async def test_admin_creates_a_pod_and_rbac_refuses_alice(
    kube_admin: KubeApi, kube_alice: KubeApi
) -> None:
    namespace = await make_namespace(kube_admin, "fixture-check")
    created = await kube_admin.create(f"/api/v1/namespaces/{namespace}/pods", POD)
    assert created["metadata"]["uid"]
    read = await kube_admin.get(f"/api/v1/namespaces/{namespace}/pods/probe")
    assert read["spec"]["containers"][0]["image"] == "example.invalid/none:1"
    # the default ServiceAccount exists: the controller-manager is running
    account = await kube_admin.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
    assert account["metadata"]["name"] == "default"
    # the scheduler looked at the pod: no node matches, so it is unschedulable
    for _ in range(600):
        pod = await kube_admin.get(f"/api/v1/namespaces/{namespace}/pods/probe")
        conditions = pod.get("status", {}).get("conditions") or []
        if any(c["type"] == "PodScheduled" for c in conditions):
            break
        await asyncio.sleep(0.1)
    assert [(c["status"], c["reason"]) for c in conditions if c["type"] == "PodScheduled"] == [
        ("False", "Unschedulable")
    ]

    with pytest.raises(Forbidden) as refused:
        await kube_alice.create(
            f"/api/v1/namespaces/{namespace}/pods", {**POD, "metadata": {"name": "alices"}}
        )
    assert refused.value.status == 403
    assert refused.value.message == (
        'pods is forbidden: User "alice" cannot create resource "pods" in API group "" '
        f'in the namespace "{namespace}"'
    )
    with pytest.raises(Forbidden, match='User "alice" cannot get resource "pods"'):
        await kube_alice.get(f"/api/v1/namespaces/{namespace}/pods/probe")
