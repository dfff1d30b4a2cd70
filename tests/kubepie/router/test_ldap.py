"""``identity.source: ldap`` with the real slapd: identities come from the directory, and every
use of a credential resolves its owner again (a changed group applies, a removed user is
refused), within the cache TTL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.oidc import OidcProvider
from tests.fixtures.slapd import GROUPS, PEOPLE, Slapd
from tests.kubepie.router.conftest import (
    Router,
    basic,
    browser_login,
    ldap_router_running,
)

CACHE_TTL = 1.0


@pytest.fixture(scope="module")
def ldap_router(oidc_provider: OidcProvider, router_area: Path, slapd: Slapd) -> Iterator[Router]:
    with ldap_router_running(
        oidc_provider, router_area, slapd, name="ldap-router", cache_ttl=CACHE_TTL
    ) as handle:
        yield handle


async def _whoami(router: Router, auth: tuple[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        return await http.get(f"{router.url}/api/v1/whoami", auth=auth)


async def test_login_maps_through_the_directory(ldap_router: Router) -> None:
    web = await browser_login(ldap_router, "carol")
    try:
        me = (await web.get(f"{ldap_router.url}/api/v1/whoami")).json()
    finally:
        await web.aclose()
    assert (me["username"], me["uid"], me["gid"]) == ("carol", 10003, 10003)
    assert me["gids"] == [10003, 20002]
    assert set(me["groups"]) == {"carol", "beamline-x"}


async def test_credentials_follow_directory_changes(ldap_router: Router, slapd: Slapd) -> None:
    home = ldap_router.home("erin")
    home.mkdir(exist_ok=True)
    os.chown(home, 10041, 10041)
    slapd.modify(
        f"dn: uid=erin,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\n"
        "objectClass: posixAccount\nuid: erin\ncn: Erin\nsn: Erin\nuidNumber: 10041\n"
        "gidNumber: 10041\nhomeDirectory: /home/erin\n"
    )
    try:
        token = ldap_router.provider.mint(
            ldap_router.provider.claims_for("erin", preferred_username="erin")
        )
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            made = await http.post(
                f"{ldap_router.url}/api/v1/credentials",
                headers={"Authorization": f"Bearer {token}"},
                json={},
            )
        assert made.status_code == 201, made.text
        cred: dict[str, Any] = made.json()
        first = (await _whoami(ldap_router, basic(cred))).json()
        assert first["gids"] == [10041]

        slapd.modify(
            f"dn: cn=physics,{GROUPS}\nchangetype: modify\nadd: memberUid\nmemberUid: erin\n"
        )
        await asyncio.sleep(CACHE_TTL + 0.3)
        joined = (await _whoami(ldap_router, basic(cred))).json()
        assert joined["gids"] == [10041, 20001]
        assert "physics" in joined["groups"]
    finally:
        slapd.modify(f"dn: uid=erin,{PEOPLE}\nchangetype: delete\n")
        slapd.modify(
            f"dn: cn=physics,{GROUPS}\nchangetype: modify\ndelete: memberUid\nmemberUid: erin\n"
        )
    await asyncio.sleep(CACHE_TTL + 0.3)
    removed = await _whoami(ldap_router, basic(cred))
    assert removed.status_code == 403, removed.text
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        dav = await http.request("PROPFIND", f"{ldap_router.url}/dav/home/", auth=basic(cred))
    assert dav.status_code == 403


async def test_directory_down_is_503(ldap_router: Router, slapd: Slapd) -> None:
    token = ldap_router.provider.mint(ldap_router.provider.claims_for("dave"))
    await asyncio.sleep(CACHE_TTL + 0.3)
    with slapd.stopped():
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            response = await http.get(
                f"{ldap_router.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
            )
    assert response.status_code == 503, response.text
