"""``StaticDirectory``: the YAML file format, lookups, and validation errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.errors import InvalidEntryError
from identity.models import Group, User
from identity.static import StaticDirectory
from tests.identity.helpers import POPULATION


@pytest.fixture
def static_file(tmp_path: Path) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(POPULATION)
    return path


async def test_lookups_from_the_file(static_file: Path) -> None:
    directory = StaticDirectory.load(static_file)
    alice = await directory.lookup_user("alice")
    assert alice == User("alice", 10001, 10001, "Alice Anders", "/home/alice", "/bin/bash")
    bob = await directory.lookup_user("bob")
    assert bob == User("bob", 10002, 10002, "", "/home/bob", "/bin/sh")
    assert await directory.lookup_user("nobody") is None
    assert await directory.lookup_user("ALICE") is None
    assert await directory.groups_for(alice) == (
        Group("alice", 10001, ()),
        Group("physics", 20001, ("alice", "bob")),
        Group("beamline-x", 20002, ("alice", "carol")),
    )
    dave = await directory.lookup_user("dave")
    assert dave is not None
    assert [g.name for g in await directory.groups_for(dave)] == ["dave"]
    assert [u.username for u in await directory.all_users()] == [
        "svc",
        "alice",
        "bob",
        "carol",
        "dave",
    ]
    assert [g.gid for g in await directory.all_groups()] == [
        500,
        10001,
        10002,
        10003,
        10004,
        20001,
        20002,
    ]


async def test_empty_file_is_an_empty_directory() -> None:
    directory = StaticDirectory.parse("")
    assert await directory.all_users() == ()
    assert await directory.lookup_user("alice") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users:\n  alice: {uid: 1, gid: 1, home: /h, shel: /bin/sh}", "users.alice.shel: Extra"),
        ("users:\n  alice: {uid: '1', gid: 1, home: /h}", "users.alice.uid: Input should be"),
        ("users:\n  alice: {uid: true, gid: 1, home: /h}", "users.alice.uid: Input should be"),
        ("users:\n  alice: {uid: -1, gid: 1, home: /h}", "users.alice.uid: Input should be"),
        ("users:\n  alice: {uid: 4294967295, gid: 1, home: /h}", "users.alice.uid"),
        ("users:\n  alice: {uid: 1, gid: 1}", "users.alice.home: Field required"),
        ("users:\n  alice: {uid: 1, gid: 1, home: h}", "users.alice.home: 'h' is not an abs"),
        ("users:\n  a:b: {uid: 1, gid: 1, home: /h}", "users: 'a:b' is not a usable"),
        ("users:\n  a: {uid: 1, gid: 1, home: /h, shell: '/bin/sh:x'}", "users.a.shell: '/bin/"),
        ('users:\n  a: {uid: 1, gid: 1, home: /h, gecos: "A\\nB"}', "users.a.gecos: 'A"),
        ("users:\n  'a b': {uid: 1, gid: 1, home: /h}", "users: 'a b' is not a usable"),
        (
            "users:\n  a: {uid: 1, gid: 1, home: /h}\n  b: {uid: 1, gid: 2, home: /h}",
            "users.b.uid: 1 is also the uid of a",
        ),
        ("groups:\n  g: {gid: 5}\n  h: {gid: 5}", "groups.h.gid: 5 is also the gid of g"),
        ("groups:\n  g: {gid: 5, members: [bobb]}", "groups.g.members: 'bobb' is not a user"),
        ("groups:\n  g: {gid: 5, members: [1]}", "groups.g.members.0: Input should be"),
        ("groups:\n  'x,y': {gid: 5}", "groups: 'x,y' is not a usable"),
        ("group:\n  g: {gid: 5}", "group: Extra inputs"),
        ("- alice", "the top level must be a mapping"),
        ("users: [", "not valid YAML"),
    ],
)
def test_bad_files_are_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(InvalidEntryError, match=message.replace("(", r"\(")) as caught:
        StaticDirectory.parse(text, source="dir.yaml")
    assert str(caught.value).startswith("dir.yaml: ")


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InvalidEntryError, match=f"{missing}: cannot read"):
        StaticDirectory.load(missing)
