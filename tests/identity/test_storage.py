from __future__ import annotations

import pytest

from identity.models import Identity
from identity.storage import MountSpec, resolve_mounts

ALICE = Identity("https://idp", "s-1", "alice", 10001, 10001, (20001,), ("physics", "beam-x"))


def test_templates_expand_per_user_and_per_group() -> None:
    specs = (
        MountSpec("home", "/home/{username}"),
        MountSpec("data", "/data", read_only=True),
        MountSpec("group-{group}", "/group/{group}"),
    )
    mounts = resolve_mounts(specs, ALICE)
    assert [(m.name, m.path, m.read_only) for m in mounts] == [
        ("home", "/home/alice", False),
        ("data", "/data", True),
        ("group-beam-x", "/group/beam-x", False),
        ("group-physics", "/group/physics", False),
    ]


def test_unsafe_group_names_are_skipped_not_substituted() -> None:
    who = Identity("i", "s", "bob", 10002, 10002, (), ("..", "ok"))
    mounts = resolve_mounts((MountSpec("g", "/group/{group}"),), who)
    assert [m.path for m in mounts] == ["/group/ok"]


@pytest.mark.parametrize(
    ("name", "path", "message"),
    [
        ("home", "/home/{user}", "unknown placeholder 'user'"),
        ("home", "home/{username}", "not absolute"),
        ("g-{group}", "/group/x", "name uses {group}"),
        ("bad/name", "/x", "not a valid"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(name: str, path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        MountSpec(name, path)
