"""Who-am-I says how a user was mapped, and a directory that cannot be reached is a page that
says so (503), with ``identity.source: ldap`` against the real slapd."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext

from tests.fixtures.oidc import OidcProvider
from tests.fixtures.slapd import Slapd
from tests.kubepie.router.conftest import Router, browser_login, ldap_router_running
from tests.kubepie.web.conftest import shot

CACHE_TTL = 1.0
HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def ldap_web_router(
    oidc_provider: OidcProvider, router_area: Path, slapd: Slapd
) -> Iterator[Router]:
    with ldap_router_running(
        oidc_provider, router_area, slapd, name="web-ldap", cache_ttl=CACHE_TTL
    ) as handle:
        yield handle


async def test_directory_down_is_a_page_that_says_so(
    ldap_web_router: Router, slapd: Slapd, browser: BrowserContext
) -> None:
    router = ldap_web_router
    http = await browser_login(router, "carol")
    try:
        whoami = await http.get(f"{router.url}/whoami", headers=HTML)
        assert whoami.status_code == 200
        assert "<strong>ldap</strong>: looked up by username in the LDAP directory" in whoami.text
        assert "<dd>10003</dd>" in whoami.text
        session = http.cookies.get("kubepie_session")
        assert session is not None
        await browser.add_cookies(
            [{"name": "kubepie_session", "value": session, "url": router.url}]
        )
        page = await browser.new_page()
        await asyncio.sleep(CACHE_TTL + 0.3)
        with slapd.stopped():
            response = await page.goto(f"{router.url}/files/home/")
            assert response is not None
            assert response.status == 503
            await shot(page, "15-error-503-directory")
            text = await page.locator("main").inner_text()
        assert "Directory unreachable" in text
        assert "cannot be reached right now" in text
        again = await http.get(f"{router.url}/files/home/", headers=HTML)
        assert again.status_code == 200  # back as soon as the directory is
    finally:
        await http.aclose()
