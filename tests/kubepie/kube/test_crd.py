"""The FileServer CRD on the real apiserver: good objects are stored, bad ones are refused
with the API's own message, unknown fields are pruned, status is a subresource, and kubectl
shows the printer columns."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from identity.models import Identity
from identity.storage import ResolvedMount
from kubepie.kube.client import KubeApi
from kubepie.kube.errors import Invalid
from kubepie.kube.resources import (
    fileserver_name,
    fileserver_object,
    fileserver_path,
    fileserver_spec,
)
from kubepie.settings.models import IdentitySettings
from tests.kubepie.kube.conftest import CRD_FILE
from tests.kubepie.kube.controlplane import ControlPlane

NAMESPACE = "default"
ALICE = Identity("https://issuer", "sub-a", "alice", 10001, 10001, (20001,), ("physics",))


def good() -> dict[str, Any]:
    mounts = [ResolvedMount("home", "/srv/home/alice", False)]
    return fileserver_object(fileserver_name("alice"), fileserver_spec(ALICE, mounts))


def prefix(name: str = "fs-alice") -> str:
    return f'FileServer.kubepie.io "{name}" is invalid: '


REFUSED: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    (
        "uid below min_uid",
        lambda o: o["spec"].update(uid=999),
        "spec.uid: Invalid value: 999: spec.uid in body should be greater than or equal to 1000",
    ),
    (
        "uid 0",
        lambda o: o["spec"].update(uid=0),
        "spec.uid: Invalid value: 0: spec.uid in body should be greater than or equal to 1000",
    ),
    (
        "gid below min_uid",
        lambda o: o["spec"].update(gid=100),
        "spec.gid: Invalid value: 100: spec.gid in body should be greater than or equal to 1000",
    ),
    (
        "supplementary gid 0",
        lambda o: o["spec"].update(gids=[0, 10001]),
        "spec.gids: Invalid value: 0: spec.gids in body should be greater than or equal to 1",
    ),
    (
        "username not POSIX",
        lambda o: o["spec"].update(username="Bob!"),
        'spec.username: Invalid value: "Bob!": spec.username in body should match '
        "'^[a-z]([a-z0-9_.-]{0,30}[a-z0-9])?$'",
    ),
    (
        "uid missing",
        lambda o: o["spec"].pop("uid"),
        "spec.uid: Required value",
    ),
    (
        "mount with two volume sources",
        lambda o: o["spec"]["mounts"][0].update(nfs={"server": "nas", "path": "/export"}),
        '<nil>: Invalid value: "": "spec.mounts" must validate one and only one schema '
        "(oneOf). Found 2 valid alternatives",
    ),
    (
        "mount path not absolute",
        lambda o: o["spec"]["mounts"][0].update(path="home/alice"),
        'spec.mounts.path: Invalid value: "home/alice": spec.mounts.path in body should '
        "match '^/'",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
async def test_bad_fileservers_are_refused_with_the_apis_message(
    fileserver_crd: str,
    kube_admin: KubeApi,
    mutate: Callable[[dict[str, Any]], object],
    message: str,
) -> None:
    body = copy.deepcopy(good())
    mutate(body)
    with pytest.raises(Invalid) as refused:
        await kube_admin.create(fileserver_path(NAMESPACE), body)
    assert refused.value.status == 422
    assert refused.value.message == prefix() + message


async def test_a_name_not_derived_from_a_user_is_refused(
    fileserver_crd: str, kube_admin: KubeApi
) -> None:
    body = good()
    body["metadata"]["name"] = "alice"
    with pytest.raises(Invalid) as refused:
        await kube_admin.create(fileserver_path(NAMESPACE), body)
    assert refused.value.message == prefix("alice") + (
        'metadata.name: Invalid value: "alice": metadata.name in body should match '
        "'^fs-[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
    )


def test_derived_names_are_dns_labels_and_distinct() -> None:
    assert fileserver_name("alice") == "fs-alice"
    odd = [fileserver_name(u) for u in ("a.b", "a-b", "a_b", "Zed", "x" * 70)]
    assert len(set(odd)) == len(odd)
    assert odd[1] == "fs-a-b"
    for name in odd:
        assert len(name) <= 63
        assert name.startswith("fs-")
        assert name[-1].isalnum()
        assert name == name.lower()


async def test_unknown_fields_are_pruned_and_status_is_a_subresource(
    fileserver_crd: str, kube_admin: KubeApi, control_plane: ControlPlane
) -> None:
    body = good()
    body["metadata"]["name"] = "fs-carol"
    body["spec"]["username"] = "carol"
    body["spec"]["privileged"] = True
    body["status"] = {"phase": "Ready", "address": "10.0.0.9:8080"}
    created = await kube_admin.create(fileserver_path(NAMESPACE), body)
    assert "privileged" not in created["spec"]
    assert created["spec"]["mounts"][0]["readOnly"] is False  # defaulted
    assert "status" not in created  # status is written only through /status
    path = fileserver_path(NAMESPACE, "fs-carol")
    await kube_admin.patch(path, {"status": {"phase": "Ready"}})
    assert "status" not in await kube_admin.get(path)
    patched = await kube_admin.patch(
        f"{path}/status", {"status": {"phase": "Ready", "address": "127.0.10.1:8080"}}
    )
    assert patched["status"]["address"] == "127.0.10.1:8080"
    with pytest.raises(Invalid, match='Unsupported value: "Exploded"'):
        await kube_admin.patch(f"{path}/status", {"status": {"phase": "Exploded"}})

    proc = await asyncio.create_subprocess_exec(
        str(control_plane.kubectl),
        f"--kubeconfig={control_plane.admin_kubeconfig}",
        "get",
        "fileservers",
        "fs-carol",
        "-o",
        "wide",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    header, row = out.decode().splitlines()
    assert header.split() == ["NAME", "USER", "UID", "PHASE", "ADDRESS", "REASON", "AGE"]
    assert row.split()[:5] == ["fs-carol", "carol", "10001", "Ready", "127.0.10.1:8080"]


def test_the_crd_minimum_is_the_default_min_uid() -> None:
    """The chart renders ``minimum`` from ``identity.min_uid``; the file holds the default."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    default = IdentitySettings.model_fields["min_uid"].default
    assert spec["properties"]["uid"]["minimum"] == default
    assert spec["properties"]["gid"]["minimum"] == default
