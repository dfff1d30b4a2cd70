"""``kubepie nss-sync`` run as a real subprocess against the real slapd and a static file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.slapd import Slapd
from tests.identity.helpers import POPULATION, run_with_files

EXPECTED_PASSWD = (
    "svc:x:500:500:Service account:/home/svc:/bin/bash\n"
    "alice:x:10001:10001:Alice Anders:/home/alice:/bin/bash\n"
    "bob:x:10002:10002:Bob Berg:/home/bob:/bin/bash\n"
    "carol:x:10003:10003:Carol Carlsson:/home/carol:/bin/bash\n"
    "dave:x:10004:10004:Dave Dahl:/home/dave:/bin/bash\n"
)
EXPECTED_GROUP = (
    "svc:x:500:\n"
    "alice:x:10001:\n"
    "bob:x:10002:\n"
    "carol:x:10003:\n"
    "dave:x:10004:\n"
    "physics:x:20001:alice,bob\n"
    "beamline-x:x:20002:alice,carol\n"
)


def nss_sync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBEPIE_")}
    return subprocess.run(
        [sys.executable, "-m", "kubepie.cli", "nss-sync", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ldap_args(slapd: Slapd) -> list[str]:
    return [
        f"--ldap-url={slapd.url}",
        f"--ldap-bind-dn={slapd.bind_dn}",
        f"--ldap-user-base={slapd.user_base}",
        f"--ldap-group-base={slapd.group_base}",
    ]


def test_writes_both_files_from_ldap_for_the_system_nss(slapd: Slapd, tmp_path: Path) -> None:
    out = tmp_path / "nss"
    done = nss_sync(
        "--output",
        str(out),
        *ldap_args(slapd),
        env={"KUBEPIE_LDAP_BIND_PASSWORD": slapd.bind_password},
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 5 users and 7 groups" in done.stdout
    assert (out / "passwd").read_text() == EXPECTED_PASSWD
    assert (out / "group").read_text() == EXPECTED_GROUP
    assert sorted(p.name for p in out.iterdir()) == ["group", "passwd"]
    for name in ("passwd", "group"):
        assert (out / name).stat().st_mode & 0o777 == 0o644
    assert run_with_files(["id", "carol"], out) == (
        "uid=10003(carol) gid=10003(carol) groups=10003(carol),20002(beamline-x)\n"
    )


def test_every_option_reads_its_environment_and_the_password_a_file(
    slapd: Slapd, tmp_path: Path
) -> None:
    secret = tmp_path / "bind-password"
    secret.write_text(slapd.bind_password + "\n")
    env = {
        "KUBEPIE_OUTPUT": str(tmp_path / "out"),
        "KUBEPIE_LDAP_URL": f"ldap://127.0.0.1:1,{slapd.ldaps_url}",
        "KUBEPIE_LDAP_BIND_DN": slapd.bind_dn,
        "KUBEPIE_LDAP_BIND_PASSWORD_FILE": str(secret),
        "KUBEPIE_LDAP_USER_BASE": slapd.user_base,
        "KUBEPIE_LDAP_GROUP_BASE": slapd.group_base,
        "KUBEPIE_LDAP_CA_FILE": str(slapd.ca_file),
    }
    done = nss_sync(env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "passwd").read_text() == EXPECTED_PASSWD


def test_directory_down_exits_3_and_keeps_the_old_files(slapd: Slapd, tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("old passwd\n")
    (tmp_path / "group").write_text("old group\n")
    env = {"KUBEPIE_LDAP_BIND_PASSWORD": slapd.bind_password}
    with slapd.stopped():
        done = nss_sync("--output", str(tmp_path), *ldap_args(slapd), env=env)
    assert done.returncode == 3
    assert "directory unavailable, nothing written" in done.stderr
    assert "no LDAP server reachable" in done.stderr
    assert (tmp_path / "passwd").read_text() == "old passwd\n"
    assert (tmp_path / "group").read_text() == "old group\n"


def test_wrong_password_exits_3_without_showing_it(slapd: Slapd, tmp_path: Path) -> None:
    env = {"KUBEPIE_LDAP_BIND_PASSWORD": "Wrong-Horse-Battery"}
    done = nss_sync("--output", str(tmp_path), *ldap_args(slapd), env=env)
    assert done.returncode == 3
    assert "invalidCredentials" in done.stderr
    assert "Wrong-Horse-Battery" not in done.stderr + done.stdout


def test_static_file(tmp_path: Path) -> None:
    static = tmp_path / "directory.yaml"
    static.write_text(POPULATION)
    done = nss_sync("--output", str(tmp_path / "out"), "--static-file", str(static))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "group").read_text().splitlines()[-2:] == [
        "physics:x:20001:alice,bob",
        "beamline-x:x:20002:alice,carol",
    ]
    assert run_with_files(["id", "-Gn", "alice"], tmp_path / "out") == (
        "alice physics beamline-x\n"
    )


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        ([], 2, "give exactly one of --static-file and --ldap-url"),
        (["--static-file=x.yaml", "--ldap-url=ldap://127.0.0.1"], 2, "exactly one"),
        (["--ldap-url=ldap://127.0.0.1"], 2, "--ldap-user-base, --ldap-group-base required"),
        (
            [
                "--ldap-url=ldap://ldap.example",
                "--ldap-user-base=ou=p",
                "--ldap-group-base=ou=g",
                "--ldap-bind-dn=cn=r",
                "--ldap-bind-password-file=/dev/null",
            ],
            2,
            "bind_password: required",
        ),
        (["--static-file=/nonexistent.yaml"], 4, "/nonexistent.yaml: cannot read"),
    ],
)
def test_bad_invocations_say_why(
    tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    done = nss_sync("--output", str(tmp_path), *args)
    assert done.returncode == status
    assert message in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_cleartext_password_to_a_remote_server_is_refused(tmp_path: Path) -> None:
    done = nss_sync(
        "--output",
        str(tmp_path),
        "--ldap-url=ldap://ldap.example",
        "--ldap-user-base=ou=p",
        "--ldap-group-base=ou=g",
        "--ldap-bind-dn=cn=r",
        env={"KUBEPIE_LDAP_BIND_PASSWORD": "s3cret-value"},
    )
    assert done.returncode == 2
    assert "would carry the bind password in clear text" in done.stderr
    assert "s3cret-value" not in done.stderr


def test_unrenderable_entry_exits_4_and_writes_nothing(slapd: Slapd, tmp_path: Path) -> None:
    # gecos is IA5 text for LDAP, so a ':' is valid there; it would split a passwd line.
    dn = f"uid=colon,{slapd.user_base}"
    slapd.modify(
        f"dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
        "uid: colon\ncn: colon\nsn: c\nuidNumber: 10060\ngidNumber: 10060\n"
        "homeDirectory: /home/colon\ngecos: x:0:0:root\n"
    )
    try:
        env = {"KUBEPIE_LDAP_BIND_PASSWORD": slapd.bind_password}
        done = nss_sync("--output", str(tmp_path / "out"), *ldap_args(slapd), env=env)
    finally:
        slapd.modify(f"dn: {dn}\nchangetype: delete\n")
    assert done.returncode == 4
    assert "cannot render, nothing written" in done.stderr
    assert "passwd entry 'colon' gecos" in done.stderr
    assert not (tmp_path / "out" / "passwd").exists()


def test_invalid_static_file_exits_4_naming_the_key(tmp_path: Path) -> None:
    static = tmp_path / "bad.yaml"
    static.write_text("users:\n  alice: {uid: 1, gid: 1, home: /h, shell: '/bin/sh:x'}\n")
    done = nss_sync("--output", str(tmp_path / "out"), "--static-file", str(static))
    assert done.returncode == 4
    assert "users.alice.shell" in done.stderr
    assert not (tmp_path / "out").exists()
