"""Compute-instance profiles: display names, role and group filtering, re-check at spawn."""

from __future__ import annotations

from typing import Any

import pytest

from hubintegration.errors import ProfileRefused, SettingsError
from hubintegration.profiles import Principal, profile_list, select
from hubintegration.settings import HubSettings, load_settings

ALICE = Principal("alice", frozenset({"a100-20g"}), frozenset({"physics", "beamline-x"}))
BOB = Principal("bob", frozenset(), frozenset({"physics"}))
DAVE = Principal("dave")


def _choices(entries: list[dict[str, Any]], slug: str) -> dict[str, Any]:
    entry = next(e for e in entries if e["slug"] == slug)
    choices: dict[str, Any] = entry["profile_options"]["compute"]["choices"]
    return choices


def test_display_names_follow_the_seed(settings: HubSettings) -> None:
    names = [c["display_name"] for c in _choices(profile_list(settings, ALICE), "common").values()]
    assert names == [
        "CPU-small (Limits: 10GB RAM, 2 CPU)",
        "Shared A100 (Limits: 100GB RAM, 8 CPU, 8GB VRAM)",
        "Dedicated A100 10G Partition (Limits: 50GB RAM, 8 CPU, 10GB VRAM, 30 min)",
        "Dedicated A100 10G Partition (Limits: 100GB RAM, 8 CPU, 10GB VRAM, 12 hours)",
        "Dedicated A100 20G Partition (Limits: 100GB RAM, 8 CPU, 20GB VRAM, 12 hours)",
        "Shared V100 (Limits: 50GB RAM, 8 CPU, 8GB VRAM)",
    ]


def test_roles_and_groups_filter_profiles_and_instances(settings: HubSettings) -> None:
    alice = profile_list(settings, ALICE)
    bob = profile_list(settings, BOB)
    dave = profile_list(settings, DAVE)
    assert [e["slug"] for e in alice] == ["common", "beamline", "arc"]
    assert [e["slug"] for e in bob] == ["common", "arc"]
    assert "a100_20g" in _choices(alice, "common")
    assert "a100_20g" not in _choices(bob, "common")
    assert "a100_10g" in _choices(bob, "common")  # group physics
    assert "a100_10g" not in _choices(dave, "common")
    dev = Principal("erin", frozenset({"gpu-dev"}), frozenset({"physics"}))
    assert "development" in [e["slug"] for e in profile_list(settings, dev)]


def test_gpu_limit_above_guarantee_becomes_the_annotation(settings: HubSettings) -> None:
    shared = _choices(profile_list(settings, DAVE), "common")["a100_shared"]
    override = shared["kubespawner_override"]
    assert override["extra_resource_guarantees"] == {"jupyterhub/a100-shared": "4"}
    assert override["extra_resource_limits"] == {"jupyterhub/a100-shared": "4"}
    assert override["extra_annotations"] == {"gpu-mem-limit.jupyterhub/a100-shared": "80"}
    assert override["node_selector"] == {"kubepie.io/node-type": "a100"}
    dedicated = _choices(profile_list(settings, BOB), "common")["a100_10g"]
    assert "extra_annotations" not in dedicated["kubespawner_override"]


def test_select_applies_defaults(settings: HubSettings) -> None:
    chosen = select(settings, DAVE, {})
    assert (chosen.profile.slug, chosen.instance_key, chosen.image_key) == (
        "common",
        "cpu_small",
        "hdf5",
    )
    form = select(settings, BOB, {"profile": ["common"], "compute": ["a100_10g"]})
    assert form.instance.walltime_minutes == 720


@pytest.mark.parametrize(
    ("who", "options", "message"),
    [
        (BOB, {"profile": "beamline"}, "profile 'beamline' is not available to bob"),
        (BOB, {"profile": "common", "compute": "a100_20g"}, "'a100_20g' is not available"),
        (DAVE, {"profile": "common", "compute": "a100_10g"}, "'a100_10g' is not available"),
        (DAVE, {"profile": "nope"}, "profile 'nope'"),
        (DAVE, {"profile": "common", "image": "other"}, "image 'other'"),
        (DAVE, {"profile": "common", "image--unlisted-choice": "evil:latest"}, "free-form"),
        (DAVE, {"profile": "common", "compute": 5}, "must be a string"),
    ],
)
def test_select_refuses(
    settings: HubSettings, who: Principal, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProfileRefused, match=message):
        select(settings, who, options)


def test_settings_errors_name_the_key(values: dict[str, Any]) -> None:
    custom = dict(values["custom"])
    custom["computeInstances"] = {
        **custom["computeInstances"],
        "bad": {"display_name": "x", "mem_limit": "lots"},
    }
    with pytest.raises(SettingsError, match=r"custom\.computeInstances\.bad\.mem_limit"):
        load_settings(custom)
    custom = dict(values["custom"])
    custom["profiles"] = [{**values["custom"]["profiles"][0], "allowed_compute_instances": ["x"]}]
    with pytest.raises(SettingsError, match=r"custom\.profiles\.0\.allowed_compute_instances"):
        load_settings(custom)
    custom = {**values["custom"], "kubepie": {"mounts": [{"name": "h", "path": "/h/{uid}"}]}}
    with pytest.raises(SettingsError, match=r"custom\.kubepie\.mounts"):
        load_settings(custom)
