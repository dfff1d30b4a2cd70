"""PieSec on the real apiserver: ``kubepie operator`` serves the webhooks over TLS with a
certificate it made and put in the configurations' caBundle; the apiserver calls them for
Pods labelled as file servers. Each refusal is asserted with the API's message."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kubepie.kube.client import KubeApi
from kubepie.kube.errors import Forbidden, KubeError
from tests.kubepie.kube.conftest import Operator, webhook_active

DENIED = 'admission webhook "validate-fileserver.kubepie.io" denied the request: '


def pod(name: str, **container: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubepie.io/role": "fileserver", "kubepie.io/username": "alice"},
        },
        "spec": {
            "nodeName": "nowhere",  # never run: these Pods only meet admission
            "automountServiceAccountToken": False,
            "containers": [
                {"name": "c", "image": "kubepie:test", "command": ["true"], **container}
            ],
        },
    }


async def test_mutation_sets_the_users_ids_from_the_directory(
    kube_admin: KubeApi, operator: Operator
) -> None:
    body = pod("mutated")
    body["spec"]["securityContext"] = {"runAsUser": 10002, "supplementalGroups": [10002]}
    created = await kube_admin.create(f"/api/v1/namespaces/{operator.namespace}/pods", body)
    assert created["spec"]["securityContext"] == {
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "supplementalGroups": [10001, 20001, 20002],
        "runAsNonRoot": True,
    }


async def test_a_user_with_rbac_to_create_pods_is_refused(
    kube_admin: KubeApi, kube_alice: KubeApi, operator: Operator
) -> None:
    ns = operator.namespace
    await kube_admin.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "metadata": {"name": "alice-edit"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}
            ],
        },
    )
    unlabelled = pod("alices-own")
    unlabelled["metadata"]["labels"] = {}
    for _ in range(100):  # RBAC grants reach the authorizer's cache shortly after
        try:
            await kube_alice.create(f"/api/v1/namespaces/{ns}/pods", unlabelled)
            break
        except Forbidden:
            await asyncio.sleep(0.1)
    with pytest.raises(Forbidden) as refused:
        await kube_alice.create(f"/api/v1/namespaces/{ns}/pods", pod("by-alice"))
    assert refused.value.message == DENIED + "alice may not create KubePie Pods: only admin may"


REFUSED = [
    (
        "mismatched ids",
        {"securityContext": {"runAsUser": 10002}},
        "container c: runAsUser 10002 is not alice's 10001",
    ),
    (
        "uid 0",
        {"securityContext": {"runAsUser": 0}},
        "container c: runAsUser 0 is refused (0 or below 1000)",
    ),
    ("privileged", {"securityContext": {"privileged": True}}, "container c is privileged"),
    (
        "added capabilities",
        {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
        "container c adds capabilities ['SYS_ADMIN']",
    ),
]


@pytest.mark.parametrize(
    ("container", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
async def test_the_operator_itself_is_refused_a_bad_pod(
    kube_admin: KubeApi, operator: Operator, container: dict[str, Any], message: str
) -> None:
    name = "bad-" + message.split()[2].lower().strip(":")[:20]
    with pytest.raises(Forbidden) as refused:
        await kube_admin.create(
            f"/api/v1/namespaces/{operator.namespace}/pods", pod(name, **copy.deepcopy(container))
        )
    assert refused.value.message == DENIED + message


async def test_host_paths_outside_the_mounts_and_host_namespaces_are_refused(
    kube_admin: KubeApi, operator: Operator
) -> None:
    path = f"/api/v1/namespaces/{operator.namespace}/pods"
    body = pod("hostpath")
    body["spec"]["volumes"] = [{"name": "etc", "hostPath": {"path": "/etc"}}]
    with pytest.raises(Forbidden) as refused:
        await kube_admin.create(path, body)
    assert refused.value.message == DENIED + (
        "hostPath '/etc' (volume etc) is outside alice's storage mounts"
    )
    body = pod("hostnet")
    body["spec"]["hostNetwork"] = True
    with pytest.raises(Forbidden) as refused:
        await kube_admin.create(path, body)
    assert refused.value.message == DENIED + "hostNetwork is not allowed"


async def test_with_the_webhook_down_no_such_pod_is_created(
    kube_admin: KubeApi, operator: Operator
) -> None:
    operator.stop()
    try:
        with pytest.raises(KubeError) as failed:
            await kube_admin.create(
                f"/api/v1/namespaces/{operator.namespace}/pods", pod("no-webhook")
            )
        assert 'failed calling webhook "mutate-fileserver.kubepie.io"' in failed.value.message
        assert "connection refused" in failed.value.message
    finally:
        operator.start()
        await webhook_active(kube_admin, operator.namespace)


async def test_hub_pods_get_the_users_ids_and_only_the_hub_may_create_them(
    kube_admin: KubeApi, kube_alice: KubeApi, operator: Operator
) -> None:
    """Pods with the configured Hub label (z2jh's ``component=singleuser-server``) are
    mutated and checked like file servers, with the Hub's user as the only creator."""
    body = pod("jupyter-bob")
    body["metadata"]["labels"] = {"component": "singleuser-server", "kubepie.io/username": "bob"}
    path = f"/api/v1/namespaces/{operator.namespace}/pods"
    created = await kube_alice.create(path, body)  # alice has edit rights (test above)
    assert created["spec"]["securityContext"]["runAsUser"] == 10002
    assert created["spec"]["securityContext"]["supplementalGroups"] == [10002, 20001]
    body["metadata"]["name"] = "jupyter-bob-2"
    with pytest.raises(Forbidden) as refused:
        await kube_admin.create(path, body)
    assert refused.value.message == (
        'admission webhook "validate-hub.kubepie.io" denied the request: '
        "admin may not create KubePie Pods: only alice may"
    )
