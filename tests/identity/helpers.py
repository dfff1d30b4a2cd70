"""Helpers shared by the directory tests: LDAP settings for the session slapd, a hand clock."""

from __future__ import annotations

from dataclasses import replace

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
