"""slapd stopped mid-test: lookups fail closed (no stale guess beyond the TTL), then recover."""

from __future__ import annotations

import asyncio

import pytest

from identity.cache import CachedDirectory
from identity.errors import DirectoryUnavailableError
from identity.ldap import LdapDirectory
from identity.models import User
from tests.fixtures.slapd import Slapd
from tests.identity.helpers import Clock, settings_for


async def test_slapd_down_fails_closed_and_recovers(slapd: Slapd) -> None:
    ldap = LdapDirectory(settings_for(slapd, connect_timeout=1.0))
    clock = Clock()
    cached = CachedDirectory(ldap, ttl=60, negative_ttl=5, clock=clock)
    alice = await cached.lookup_user("alice")
    assert alice is not None
    assert len(await cached.groups_for(alice)) == 3
    assert await cached.lookup_user("nobody") is None

    with slapd.stopped():
        # The directory itself refuses every kind of call: no None, no empty tuple.
        for call in (
            ldap.lookup_user("alice"),
            ldap.lookup_user("bob"),
            ldap.groups_for(alice),
            ldap.all_users(),
            ldap.all_groups(),
        ):
            with pytest.raises(DirectoryUnavailableError, match="no LDAP server reachable"):
                await call
        # Within the TTL the cache answers what the directory said before it went down.
        clock.now += 30
        assert await cached.lookup_user("alice") == alice
        # Nothing cached for bob: the error reaches the caller, and is not cached either.
        with pytest.raises(DirectoryUnavailableError):
            await cached.lookup_user("bob")
        # Past the (shorter) negative TTL, "nobody" is asked again, and that fails.
        with pytest.raises(DirectoryUnavailableError):
            await cached.lookup_user("nobody")
        # Past the TTL nothing stale is served.
        clock.now += 31
        with pytest.raises(DirectoryUnavailableError):
            await cached.lookup_user("alice")
        with pytest.raises(DirectoryUnavailableError):
            await cached.groups_for(alice)

    # slapd is back on the same port: both recover at once (no error was cached).
    assert await ldap.lookup_user("alice") == alice
    assert await cached.lookup_user("bob") == User(
        "bob", 10002, 10002, "Bob Berg", "/home/bob", "/bin/bash"
    )
    assert {g.name for g in await cached.groups_for(alice)} == {"alice", "physics", "beamline-x"}


async def test_hung_slapd_times_out_instead_of_holding_the_caller(slapd: Slapd) -> None:
    ldap = LdapDirectory(settings_for(slapd, connect_timeout=1.0, receive_timeout=1))
    loop = asyncio.get_running_loop()
    with slapd.frozen():
        started = loop.time()
        with pytest.raises(DirectoryUnavailableError, match="timed out"):
            await ldap.lookup_user("alice")
        assert loop.time() - started < 5
    assert await ldap.lookup_user("alice") is not None
