"""``CachedDirectory`` semantics: TTLs, negative answers, LRU bound, errors, single flight."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from identity.cache import CachedDirectory
from identity.directory import Directory
from identity.errors import DirectoryUnavailableError
from identity.ldap import LdapDirectory
from identity.models import Group, User
from identity.static import StaticDirectory
from tests.fixtures.slapd import Slapd
from tests.identity.helpers import Clock, settings_for

STATIC = """
users:
  alice: {uid: 10001, gid: 10001, home: /home/alice}
  bob: {uid: 10002, gid: 10002, home: /home/bob}
  carol: {uid: 10003, gid: 10003, home: /home/carol}
groups:
  physics: {gid: 20001, members: [alice, bob]}
"""


class Recording:
    """A real StaticDirectory that counts the calls reaching it and can be switched off."""

    def __init__(self, delay: float = 0.0) -> None:
        self.inner = StaticDirectory.parse(STATIC)
        self.calls: Counter[str] = Counter()
        self.down = False
        self.delay = delay

    async def _enter(self, what: str) -> None:
        self.calls[what] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise DirectoryUnavailableError("switched off")

    async def lookup_user(self, username: str) -> User | None:
        await self._enter(f"user:{username}")
        return await self.inner.lookup_user(username)

    async def groups_for(self, user: User) -> tuple[Group, ...]:
        await self._enter(f"groups:{user.username}")
        return await self.inner.groups_for(user)

    async def all_users(self) -> tuple[User, ...]:
        await self._enter("all_users")
        return await self.inner.all_users()

    async def all_groups(self) -> tuple[Group, ...]:
        await self._enter("all_groups")
        return await self.inner.all_groups()


@pytest.fixture
def newbie(slapd: Slapd) -> Iterator[str]:
    """The DN of an account the test creates; removed afterwards whatever happened."""
    dn = f"uid=newbie,{slapd.user_base}"
    yield dn
    slapd.modify(f"dn: {dn}\nchangetype: delete\n")


async def test_ttls_against_real_changes_in_ldap(slapd: Slapd, newbie: str) -> None:
    clock = Clock()
    cached = CachedDirectory(
        LdapDirectory(settings_for(slapd)), ttl=60, negative_ttl=10, clock=clock
    )
    assert await cached.lookup_user("newbie") is None
    slapd.modify(
        f"dn: {newbie}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
        "uid: newbie\ncn: Newbie\nsn: N\nuidNumber: 10050\ngidNumber: 10050\n"
        "homeDirectory: /home/newbie\nloginShell: /bin/sh\n"
    )
    clock.now += 9
    assert await cached.lookup_user("newbie") is None  # the negative answer holds 10 s
    clock.now += 2
    found = await cached.lookup_user("newbie")
    assert found is not None
    assert found.shell == "/bin/sh"
    slapd.modify(f"dn: {newbie}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/zsh\n")
    clock.now += 59
    assert (await cached.lookup_user("newbie")) == found  # the positive answer holds 60 s
    clock.now += 2
    refreshed = await cached.lookup_user("newbie")
    assert refreshed is not None
    assert refreshed.shell == "/bin/zsh"


async def test_least_recently_used_entry_is_evicted_first() -> None:
    inner = Recording()
    cached = CachedDirectory(inner, ttl=60, max_entries=2)
    await cached.lookup_user("alice")
    await cached.lookup_user("bob")
    await cached.lookup_user("alice")  # alice is now the most recently used
    await cached.lookup_user("carol")  # evicts bob
    assert len(cached) == 2
    await cached.lookup_user("alice")
    await cached.lookup_user("bob")
    assert inner.calls["user:alice"] == 1
    assert inner.calls["user:bob"] == 2
    assert len(cached) == 2


async def test_errors_are_not_cached_and_expired_entries_not_served() -> None:
    inner = Recording()
    clock = Clock()
    cached = CachedDirectory(inner, ttl=60, clock=clock)
    alice = await cached.lookup_user("alice")
    assert alice is not None
    inner.down = True
    assert await cached.lookup_user("alice") == alice  # within the TTL
    for _ in range(2):
        with pytest.raises(DirectoryUnavailableError):
            await cached.lookup_user("bob")
    assert inner.calls["user:bob"] == 2  # the error was not remembered
    clock.now += 61
    with pytest.raises(DirectoryUnavailableError):
        await cached.lookup_user("alice")
    inner.down = False
    assert await cached.lookup_user("bob") is not None
    assert await cached.lookup_user("alice") == alice


async def test_groups_and_listings_are_cached_by_value() -> None:
    inner = Recording()
    cached: Directory = CachedDirectory(inner, ttl=60)  # the cache is a Directory itself
    alice = User("alice", 10001, 10001, home="/home/alice")
    moved = User("alice", 10001, 30000, home="/home/alice")
    assert [g.name for g in await cached.groups_for(alice)] == ["physics"]
    await cached.groups_for(alice)
    await cached.groups_for(moved)  # another primary gid is another key
    assert inner.calls["groups:alice"] == 2
    assert await cached.all_users() == await cached.all_users()
    assert await cached.all_groups() == await cached.all_groups()
    assert (inner.calls["all_users"], inner.calls["all_groups"]) == (1, 1)
    assert isinstance(cached, CachedDirectory)
    cached.clear()
    await cached.all_users()
    assert inner.calls["all_users"] == 2


async def test_zero_negative_ttl_never_remembers_unknown_users() -> None:
    inner = Recording()
    cached = CachedDirectory(inner, ttl=60, negative_ttl=0)
    assert await cached.lookup_user("zed") is None
    assert await cached.lookup_user("zed") is None
    assert inner.calls["user:zed"] == 2


async def test_concurrent_misses_share_one_call_and_its_error() -> None:
    inner = Recording(delay=0.05)
    cached = CachedDirectory(inner, ttl=60)
    results = await asyncio.gather(*(cached.lookup_user("alice") for _ in range(10)))
    assert inner.calls["user:alice"] == 1
    assert len(set(results)) == 1
    assert results[0] is not None

    inner.down = True
    outcomes = await asyncio.gather(
        *(cached.lookup_user("bob") for _ in range(5)), return_exceptions=True
    )
    assert inner.calls["user:bob"] == 1
    assert all(isinstance(o, DirectoryUnavailableError) for o in outcomes)


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    inner = Recording(delay=0.05)
    cached = CachedDirectory(inner, ttl=60)
    first = asyncio.ensure_future(cached.lookup_user("carol"))
    second = asyncio.ensure_future(cached.lookup_user("carol"))
    await asyncio.sleep(0.01)
    first.cancel()
    carol = await second
    assert carol is not None
    assert carol.uid == 10003
    assert first.cancelled()
    assert inner.calls["user:carol"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": 10, "negative_ttl": 11}, "negative_ttl"),
        ({"ttl": 10, "negative_ttl": -1}, "negative_ttl"),
        ({"max_entries": 0}, "max_entries"),
    ],
)
def test_settings_are_checked(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CachedDirectory(Recording(), **kwargs)  # type: ignore[arg-type]
