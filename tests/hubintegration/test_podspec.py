"""Pure pod-spec changes: switches, sidecar removal, env merging."""

from __future__ import annotations

from typing import Any

import pytest

from hubintegration import podspec
from hubintegration.settings import KubePie
from identity.models import Identity
from identity.storage import ResolvedMount

CAROL = Identity("iss", "carol", "carol", 10003, 10003, (20002,), ("beamline-x",))


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-carol"},
        "spec": {
            "containers": [
                {"name": "notebook", "image": "i", "env": [{"name": "HOME", "value": "/x"}]},
                {"name": podspec.WALLTIME, "image": "s"},
                {"name": podspec.TOKEN_HELPER, "image": "s"},
            ]
        },
    }


def _plan(settings: KubePie, **kw: Any) -> podspec.PodPlan:
    mounts = (ResolvedMount("Group_X", "/group/beamline-x", False),)
    return podspec.PodPlan(CAROL, "", mounts, settings, "http://hub:8081/hub/api", **kw)


def test_switches_off_and_no_sidecars() -> None:
    settings = KubePie(nss_configmap=None, lxcfs=False, startup_wrapper=None)
    pod = _pod()
    out = podspec.apply(pod, _plan(settings))
    assert pod == _pod()  # the input is not changed
    spec = out["spec"]
    assert [c["name"] for c in spec["containers"]] == ["notebook"]
    assert [v["name"] for v in spec["volumes"]] == ["kubepie-m0-group-x"]
    notebook = spec["containers"][0]
    assert "command" not in notebook
    env = {e["name"]: e["value"] for e in notebook["env"]}
    assert env["HOME"] == "/home/carol"  # replaced, not duplicated
    assert [e["name"] for e in notebook["env"]].count("HOME") == 1
    assert "BEARER_TOKEN_FILE" not in env
    assert spec["securityContext"]["supplementalGroups"] == [10003, 20002]


def test_sidecars_get_their_settings() -> None:
    walltime = podspec.Walltime(deadline=1_700_000_000.5, total_s=1800, token="wt-token")
    out = podspec.apply(_pod(), _plan(KubePie(), walltime=walltime, helper_token="helper"))
    containers = {c["name"]: c for c in out["spec"]["containers"]}
    wt = {e["name"]: e.get("value") for e in containers[podspec.WALLTIME]["env"]}
    assert wt["KUBEPIE_WALLTIME_DEADLINE"] == "1700000000.500"
    assert wt["KUBEPIE_HUB_TOKEN"] == "wt-token"
    helper = containers[podspec.TOKEN_HELPER]
    assert helper["volumeMounts"] == [{"name": "kubepie-token", "mountPath": "/run/kubepie-token"}]
    token_volume = next(v for v in out["spec"]["volumes"] if v["name"] == "kubepie-token")
    assert token_volume["emptyDir"]["medium"] == "Memory"
    notebook_env = {e["name"]: e.get("value") for e in containers["notebook"]["env"]}
    assert notebook_env["KUBEPIE_WALLTIME_URL"] == "http://127.0.0.1:8181/"
    assert "wt-token" not in str(containers["notebook"])
    assert "helper" not in str(containers["notebook"]["env"])


def test_a_pod_without_notebook_is_an_error() -> None:
    pod = _pod()
    pod["spec"]["containers"] = pod["spec"]["containers"][1:]
    with pytest.raises(ValueError, match="notebook"):
        podspec.apply(pod, _plan(KubePie()))
