"""Dropping root for good, in a forked child (the local backend's way) and at the CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepie.fileserver.privileges import (
    Credentials,
    PrivilegeError,
    drop_privileges,
    run_dropped,
)
from tests.kubepie.fileserver.servers import (
    ALICE,
    BOB,
    PHYSICS,
    kubepie_argv,
    setpriv,
    shared_area,
    user_dir,
)


@pytest.fixture
def area() -> Iterator[Path]:
    with shared_area() as path:
        private = path / "alice-only.txt"
        private.write_text("alice\n")
        os.chown(private, ALICE.uid, ALICE.gid)
        os.chmod(private, 0o600)
        group_file = path / "physics.txt"
        group_file.write_text("physics\n")
        os.chown(group_file, ALICE.uid, PHYSICS)
        os.chmod(group_file, 0o640)
        yield path


def _child_exit(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.root
def test_forked_child_drops_and_cannot_regain_root(area: Path) -> None:
    report = area / "report.txt"
    user_dir(area / "out", BOB)

    def body() -> int:
        lines = [f"{os.getresuid()} {os.getresgid()} {sorted(os.getgroups())}"]
        for attempt in (os.setuid, os.seteuid, os.setgid):
            try:
                attempt(0)
                lines.append("regained")
            except PermissionError:
                lines.append("refused")
        try:
            (area / "alice-only.txt").read_text()
            lines.append("read private")
        except PermissionError:
            lines.append("private refused")
        lines.append((area / "physics.txt").read_text().strip())
        (area / "out" / "report.txt").write_text("\n".join(lines))
        return 0

    pid = run_dropped(Credentials(BOB.uid, BOB.gid, BOB.gids), body)
    assert _child_exit(pid) == 0
    report = area / "out" / "report.txt"
    lines = report.read_text().splitlines()
    uid, gid = BOB.uid, BOB.gid
    assert lines[0] == f"{(uid, uid, uid)} {(gid, gid, gid)} {sorted(BOB.gids)}"
    assert lines[1:4] == ["refused"] * 3
    assert lines[4] == "private refused"
    assert lines[5] == "physics"  # bob is in physics (20001)
    assert os.stat(report).st_uid == BOB.uid


@pytest.mark.root
def test_forked_child_outside_the_group_cannot_read_group_file(area: Path) -> None:
    def body() -> int:
        try:
            (area / "physics.txt").read_text()
        except PermissionError:
            return 0
        return 1

    carol_like = Credentials(10003, 10003, (10003, 20002))
    assert _child_exit(run_dropped(carol_like, body)) == 0


@pytest.mark.root
def test_a_failed_drop_never_runs_the_body(area: Path) -> None:
    marker = area / "ran"

    def body() -> int:
        marker.write_text("ran")
        return 0

    # gid 2**32-1 is (gid_t)-1, "leave unchanged" to setresgid: the gid stays 0, and the
    # verification after the drop must catch it.
    unchangeable = Credentials(ALICE.uid, 2**32 - 1, ())
    assert _child_exit(run_dropped(unchangeable, body)) == 70
    assert not marker.exists()


@pytest.mark.root
def test_dropping_twice_is_refused(area: Path) -> None:
    def again() -> int:
        try:
            drop_privileges(Credentials(BOB.uid, BOB.gid, BOB.gids))
        except PrivilegeError:
            return 0
        return 1

    assert _child_exit(run_dropped(Credentials(ALICE.uid, ALICE.gid, ALICE.gids), again)) == 0


def test_root_ids_are_never_a_target() -> None:
    with pytest.raises(PrivilegeError):
        Credentials(0, 10001, ())
    with pytest.raises(PrivilegeError):
        Credentials(10001, 0, ())


def test_standalone_refuses_to_start_as_root(area: Path) -> None:
    env = {"PATH": os.environ["PATH"], "KUBEPIE_ACCESS_KEY": "a", "KUBEPIE_SECRET_KEY": "b"}
    argv = kubepie_argv("--standalone", f"--root=x={area}", "--listen=127.0.0.1:1")
    if os.geteuid() != 0:  # pragma: no cover - CI runs as root
        pytest.fail("this test must run as root")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "refuses to run as root" in result.stderr


def test_standalone_refuses_to_start_without_credentials(area: Path) -> None:
    argv = [*setpriv(ALICE), *kubepie_argv("--standalone", f"--root=x={area}", "--listen=:1")]
    env = {"PATH": os.environ["PATH"], "HOME": str(area)}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=area)
    assert result.returncode == 2
    assert "KUBEPIE_ACCESS_KEY" in result.stderr
    assert "KUBEPIE_SECRET_KEY" in result.stderr
