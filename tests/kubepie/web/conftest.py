"""The real router for the web UI tests, and a headless Chromium to drive it.

* ``web_router`` (session): ``kubepie serve`` (which serves the UI) with the real
  oidc-provider as issuer and the local backend, started by the router tests' own harness.
* ``browser``: a fresh Chromium profile driven by Playwright (Debian's ``/usr/bin/chromium``;
  Playwright's own browser downloads are never used). :func:`shot` saves a full-page
  screenshot under ``test-artifacts/web/``.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, ViewportSize, async_playwright

from tests.fixtures.oidc import OidcProvider
from tests.kubepie.router.conftest import (
    CLAIMS_IDENTITY,
    Router,
    router_area,  # noqa: F401 (a fixture, used by web_router)
    start_router,
)

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1200, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def web_router(oidc_provider: OidcProvider, router_area: Path) -> Iterator[Router]:  # noqa: F811
    handle = start_router(oidc_provider, router_area, name="web", identity=CLAIMS_IDENTITY)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
async def browser() -> AsyncIterator[BrowserContext]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubepie-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=FLAGS,
                headless=True,
                viewport=DESKTOP,
                accept_downloads=True,
            )
            context.set_default_timeout(15_000)
            try:
                yield context
            finally:
                await context.close()


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
