"""NSS rendering: exact lines, determinism, refusals; and the system's own NSS reading the files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from identity.errors import InvalidEntryError
from identity.ldap import LdapDirectory
from identity.models import Group, User
from identity.nss import group_line, passwd_line, render_group, render_passwd
from kubepie.cli.nss_sync import write_atomically
from tests.fixtures.slapd import Slapd
from tests.identity.helpers import nss_env, run_with_files, settings_for

USERS = (
    User("bob", 10002, 10002, "Bob Berg", "/home/bob", "/bin/bash"),
    User("alice", 10001, 10001, "Alice Anders", "/home/alice", "/bin/bash"),
    User("svc", 500, 500, "", "/var/lib/svc", "/usr/sbin/nologin"),
)
GROUPS = (
    Group("physics", 20001, ("bob", "alice", "alice")),
    Group("alice", 10001),
    Group("beamline-x", 20002, ("carol", "alice")),
)


def test_lines_are_rendered_sorted_and_deterministic() -> None:
    assert render_passwd(USERS) == (
        "svc:x:500:500::/var/lib/svc:/usr/sbin/nologin\n"
        "alice:x:10001:10001:Alice Anders:/home/alice:/bin/bash\n"
        "bob:x:10002:10002:Bob Berg:/home/bob:/bin/bash\n"
    )
    assert render_group(GROUPS) == (
        "alice:x:10001:\nphysics:x:20001:alice,bob\nbeamline-x:x:20002:alice,carol\n"
    )
    assert render_passwd(reversed(USERS)) == render_passwd(USERS)
    assert render_group(reversed(GROUPS)) == render_group(GROUPS)
    assert render_passwd(()) == ""
    assert render_group(()) == ""


@pytest.mark.parametrize("bad", [":", "\n", "\r", "\x00"])
@pytest.mark.parametrize("field", ["username", "gecos", "home", "shell"])
def test_passwd_fields_with_separators_are_refused(field: str, bad: str) -> None:
    values: dict[str, object] = {
        "username": "eve",
        "uid": 10666,
        "gid": 10666,
        "gecos": "Eve",
        "home": "/home/eve",
        "shell": "/bin/sh",
    }
    values[field] = f"{values[field]}{bad}root:x:0:0::/root:/bin/sh"
    with pytest.raises(InvalidEntryError, match="contains"):
        passwd_line(User(**values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (Group("g:x", 1), "contains ':'"),
        (Group("g\n", 1), "contains '\\\\n'"),
        (Group("g", 1, ("alice\nroot",)), "member: 'alice\\\\nroot' contains"),
        (Group("g", 1, ("alice,root",)), "contains ',' or whitespace"),
        (Group("g", 1, ("al ice",)), "contains ',' or whitespace"),
        (Group("", 1), "empty name"),
        (Group("g", -1), "-1 is not a valid id"),
        (Group("g", 2**32), "is not a valid id"),
    ],
)
def test_group_entries_that_would_change_meaning_are_refused(group: Group, message: str) -> None:
    with pytest.raises(InvalidEntryError, match=message):
        group_line(group)


def test_bad_users_and_duplicates_are_refused() -> None:
    with pytest.raises(InvalidEntryError, match="empty name"):
        passwd_line(User("", 1, 1))
    with pytest.raises(InvalidEntryError, match="contains ',' or whitespace"):
        passwd_line(User("a,b", 1, 1))
    with pytest.raises(InvalidEntryError, match="uid: -5 is not a valid id"):
        passwd_line(User("neg", -5, 1))
    with pytest.raises(InvalidEntryError, match="'alice' appears twice"):
        render_passwd((*USERS, User("alice", 4242, 4242)))
    with pytest.raises(InvalidEntryError, match="'physics' appears twice"):
        render_group((*GROUPS, Group("physics", 4242)))


@pytest.fixture
async def ldap_nss_dir(slapd: Slapd, tmp_path: Path) -> Path:
    """passwd and group files rendered from the session slapd."""
    directory = LdapDirectory(settings_for(slapd))
    write_atomically(tmp_path / "passwd", render_passwd(await directory.all_users()))
    write_atomically(tmp_path / "group", render_group(await directory.all_groups()))
    return tmp_path


def test_system_nss_reads_the_files_rendered_from_ldap(ldap_nss_dir: Path) -> None:
    tmp_path = ldap_nss_dir

    passwd = run_with_files(["getent", "passwd", "alice"], tmp_path)
    assert passwd == "alice:x:10001:10001:Alice Anders:/home/alice:/bin/bash\n"
    assert run_with_files(["getent", "passwd", "10003"], tmp_path).startswith("carol:x:10003:")
    assert run_with_files(["getent", "group", "beamline-x"], tmp_path) == (
        "beamline-x:x:20002:alice,carol\n"
    )
    assert run_with_files(["id", "alice"], tmp_path) == (
        "uid=10001(alice) gid=10001(alice) groups=10001(alice),20001(physics),20002(beamline-x)\n"
    )
    assert run_with_files(["id", "bob"], tmp_path) == (
        "uid=10002(bob) gid=10002(bob) groups=10002(bob),20001(physics)\n"
    )
    assert run_with_files(["id", "dave"], tmp_path) == (
        "uid=10004(dave) gid=10004(dave) groups=10004(dave)\n"
    )
    assert run_with_files(["id", "svc"], tmp_path) == (
        "uid=500(svc) gid=500(svc) groups=500(svc)\n"
    )
    unknown = subprocess.run(
        ["getent", "passwd", "mallory"], env=nss_env(tmp_path), capture_output=True, check=False
    )
    assert unknown.returncode == 2  # getent: key not found


def test_atomic_write_replaces_the_file_with_mode_0644(tmp_path: Path) -> None:
    target = tmp_path / "passwd"
    target.write_text("old\n")
    target.chmod(0o600)
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]  # no temp file left
