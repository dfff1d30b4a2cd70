"""Helpers shared by the directory tests: LDAP settings for the session slapd, a hand clock,
the static population, and running a command with the system NSS reading our files."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from identity.ldap import LdapSettings
from tests.fixtures.slapd import Slapd


def settings_for(slapd: Slapd, **overrides: object) -> LdapSettings:
    """Settings that read the session slapd as its service account, with ``overrides``."""
    base = LdapSettings(
        urls=(slapd.url,),
        user_base=slapd.user_base,
        group_base=slapd.group_base,
        bind_dn=slapd.bind_dn,
        bind_password=slapd.bind_password,
        connect_timeout=2.0,
        receive_timeout=5,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


class Clock:
    """A clock the test moves by hand (the cache takes any ``() -> float``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


#: The shared test population as a static directory file.
POPULATION = """\
users:
  alice: {uid: 10001, gid: 10001, home: /home/alice, shell: /bin/bash, gecos: Alice Anders}
  bob: {uid: 10002, gid: 10002, home: /home/bob}
  carol: {uid: 10003, gid: 10003, home: /home/carol}
  dave: {uid: 10004, gid: 10004, home: /home/dave}
  svc: {uid: 500, gid: 500, home: /var/lib/svc, shell: /usr/sbin/nologin}
groups:
  alice: {gid: 10001}
  bob: {gid: 10002}
  carol: {gid: 10003}
  dave: {gid: 10004}
  svc: {gid: 500}
  physics: {gid: 20001, members: [bob, alice, alice]}
  beamline-x:
    gid: 20002
    members: [alice, carol]
"""


def nss_wrapper_library() -> str:
    listing = subprocess.run(
        ["dpkg", "-L", "libnss-wrapper"], capture_output=True, text=True, check=True
    ).stdout
    paths = [p for p in listing.split() if p.endswith("/libnss_wrapper.so")]
    assert paths, "libnss-wrapper is not installed (scripts/install-test-deps installs it)"
    return paths[0]


def nss_env(nss_dir: Path) -> Mapping[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LD_PRELOAD": nss_wrapper_library(),
        "NSS_WRAPPER_PASSWD": str(nss_dir / "passwd"),
        "NSS_WRAPPER_GROUP": str(nss_dir / "group"),
    }


def run_with_files(argv: list[str], nss_dir: Path) -> str:
    env = nss_env(nss_dir)
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
