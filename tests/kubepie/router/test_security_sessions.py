"""Server-side sessions: logout, and a user's removal from the directory, end a session for
good; a copy of the cookie taken before opens nothing afterwards (it used to stay valid for its
whole 8-hour life, and could mint app credentials)."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubepie.router.sessions import SqliteSessionStore
from tests.fixtures.oidc import OidcProvider, drive_login
from tests.fixtures.slapd import PEOPLE, Slapd, ssha
from tests.kubepie.router.conftest import Router, browser_login, ldap_router_running

CACHE_TTL = 1.0


async def _replay(router: Router, cookie: str) -> tuple[int, int]:
    """whoami and a credential POST with only ``cookie`` (and a same-origin Origin)."""
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        http.cookies.set("kubepie_session", cookie)
        who = await http.get(f"{router.url}/api/v1/whoami")
        mint = await http.post(
            f"{router.url}/api/v1/credentials", json={}, headers={"Origin": router.url}
        )
    return who.status_code, mint.status_code


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(router: Router) -> None:
    web = await browser_login(router, "alice")
    try:
        cookie = web.cookies["kubepie_session"]
        who, _ = await _replay(router, cookie)
        assert who == 200
        logout = await web.get(f"{router.url}/logout")
        assert logout.status_code == 302
        assert await _replay(router, cookie) == (401, 401)
    finally:
        await web.aclose()


async def test_a_new_login_ends_the_browsers_previous_session(router: Router) -> None:
    web = await browser_login(router, "alice")
    other = await browser_login(router, "alice")
    try:
        old = web.cookies["kubepie_session"]
        callback = await drive_login(
            web, f"{router.url}/login", "alice", issuer=router.provider.issuer
        )
        assert (await web.get(callback)).status_code == 302
        assert web.cookies["kubepie_session"] != old
        assert (await _replay(router, old))[0] == 401
        assert (await _replay(router, web.cookies["kubepie_session"]))[0] == 200
        # Another browser's session is its own.
        assert (await _replay(router, other.cookies["kubepie_session"]))[0] == 200
    finally:
        await web.aclose()
        await other.aclose()


@pytest.fixture(scope="module")
def ldap_router(oidc_provider: OidcProvider, router_area: Path, slapd: Slapd) -> Iterator[Router]:
    with ldap_router_running(
        oidc_provider, router_area, slapd, name="sessions-ldap", cache_ttl=CACHE_TTL
    ) as handle:
        yield handle


DAVE = (
    f"dn: uid=dave,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\n"
    "objectClass: posixAccount\nuid: dave\ncn: Dave Dahl\nsn: Dahl\nuidNumber: 10004\n"
    "gidNumber: 10004\nhomeDirectory: /home/dave\nloginShell: /bin/bash\ngecos: Dave Dahl\n"
    "userPassword: {password}\n"
)


async def test_removal_from_the_directory_ends_every_session(
    ldap_router: Router, slapd: Slapd
) -> None:
    router = ldap_router
    web = await browser_login(router, "dave")
    other = await browser_login(router, "dave")
    try:
        cookies = [web.cookies["kubepie_session"], other.cookies["kubepie_session"]]
        assert [(await _replay(router, c))[0] for c in cookies] == [200, 200]
        slapd.modify(f"dn: uid=dave,{PEOPLE}\nchangetype: delete\n")
        try:
            await asyncio.sleep(CACHE_TTL + 0.3)  # the directory cache forgets dave
            gone = await web.get(f"{router.url}/api/v1/whoami")
            assert gone.status_code == 403, gone.text
        finally:
            slapd.modify(DAVE.format(password=ssha("dave-pw")))
        await asyncio.sleep(CACHE_TTL + 0.3)
        # Back in the directory: the sessions he had are over, both of them; a login works.
        assert [(await _replay(router, c))[0] for c in cookies] == [401, 401]
        again = await browser_login(router, "dave")
        try:
            assert (await again.get(f"{router.url}/api/v1/whoami")).status_code == 200
        finally:
            await again.aclose()
    finally:
        await web.aclose()
        await other.aclose()


def _stored(path: Path) -> bytes:
    return path.read_bytes() + Path(f"{path}-wal").read_bytes()


async def test_session_store(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "state" / "sessions.sqlite3"
    store = await SqliteSessionStore.open(path, clock=lambda: now[0])
    try:
        a = await store.start("https://issuer", "alice", 60)
        b = await store.start("https://issuer", "alice", 600)
        c = await store.start("https://issuer", "bob", 600)
        assert len({a, b, c}) == 3
        assert all([await store.alive(s) for s in (a, b, c)])
        assert not await store.alive("not-a-session")
        assert not await store.alive("")
        await store.end(a)
        assert not await store.alive(a)
        await store.end(a)  # ending twice is fine
        now[0] += 601
        assert not await store.alive(b)  # expired
        now[0] -= 601
        assert await store.end_all("https://issuer", "alice") == 1
        assert not await store.alive(b)
        assert await store.alive(c)
        # Only hashes of the ids are stored; the file is private.
        assert c.encode() not in await asyncio.to_thread(_stored, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        await store.close()
    reopened = await SqliteSessionStore.open(path, clock=lambda: now[0])
    try:
        assert await reopened.alive(c)  # survives a restart
    finally:
        await reopened.close()
