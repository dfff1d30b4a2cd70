"""A user's HTML file cannot act with another user's browser session (stored XSS).

bob puts an HTML page into the group area he shares with alice; its script POSTs to
``/api/v1/credentials`` (as a same-origin JSON request, and as the cross-origin ``text/plain``
"simple" request that needs no CORS preflight) to mint an app credential for whoever views it.
alice, logged in through the real provider in headless Chromium, follows every link to it: the
``/dav`` link (the session cookie no longer opens ``/dav``), bob's presigned S3 link (served
as a download), the web UI's file link (a download). A plain-text file bob shares is shown,
but in a sandbox: an opaque origin whose requests the API refuses. Afterwards alice has exactly
the credentials she had before, and the answers carry the headers that make this so.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config
from mypy_boto3_s3 import S3Client
from playwright.async_api import BrowserContext, Download, Page, expect
from playwright.async_api import Error as PlaywrightError

from tests.kubepie.router.conftest import Router, basic
from tests.kubepie.web.test_browser import log_in

CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'"


def evil_page(router: Router) -> bytes:
    api = f"{router.url}/api/v1/credentials"
    return f"""<!doctype html><title>bob's page</title><script>
const simple = {{method: "POST", credentials: "include", mode: "no-cors",
                headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}};
const json = {{method: "POST", credentials: "include",
              headers: {{"Content-Type": "application/json"}}, body: "{{}}"}};
fetch("{api}", simple).catch(() => null)
  .then(() => fetch("/api/v1/credentials", json)).catch(() => null)
  .finally(() => {{ document.title = "evil ran"; }});
</script>""".encode()


async def _bearer(router: Router, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {router.provider.mint(router.provider.claims_for(user))}"}


async def _credential_ids(router: Router, user: str) -> set[str]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        listed = await http.get(
            f"{router.url}/api/v1/credentials", headers=await _bearer(router, user)
        )
    assert listed.status_code == 200, listed.text
    return {c["id"] for c in listed.json()["credentials"]}


def _s3(router: Router, cred: dict[str, Any]) -> S3Client:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=router.s3_url,
        aws_access_key_id=cred["access_key_id"],
        aws_secret_access_key=cred["secret_access_key"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


async def _status(page: Page, url: str) -> int:
    """Open ``url`` as a followed link that shows a page: its status."""
    response = await page.goto(url)
    assert response is not None
    return response.status


async def _login_asked(page: Page, url: str) -> None:
    """Open ``url``; it must ask for credentials (401 with a Basic challenge: Chromium, with
    none to give, ends the navigation there), not show anything."""
    try:
        response = await page.goto(url)
    except PlaywrightError as exc:
        error = str(exc)
    else:
        error = f"status {response.status if response is not None else None}"
    assert error == "status 401" or "ERR_INVALID_AUTH_CREDENTIALS" in error, error


async def _download(page: Page, url: str) -> Download:
    """Open ``url`` as a followed link that must become a download (not a page)."""
    async with page.expect_download() as info:
        with contextlib.suppress(PlaywrightError):  # "Download is starting": no page
            await page.goto(url)
    return await info.value


async def test_shared_html_cannot_mint_credentials_for_its_viewer(
    web_router: Router, browser: BrowserContext, tmp_path: Path
) -> None:
    router = web_router
    name = f"evil-{secrets.token_hex(4)}.html"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        made = await http.post(
            f"{router.url}/api/v1/credentials", json={}, headers=await _bearer(router, "bob")
        )
        assert made.status_code == 201, made.text
        bob = made.json()
        put = await http.put(
            f"{router.url}/dav/group-physics/{name}", content=evil_page(router), auth=basic(bob)
        )
        assert put.status_code in (201, 204), put.text
    try:
        s3 = _s3(router, bob)
        await asyncio.to_thread(
            s3.put_object,
            Bucket="group-physics",
            Key=f"s3-{name}",
            Body=evil_page(router),
            ContentType="text/html",
        )
        await asyncio.to_thread(
            s3.put_object,
            Bucket="group-physics",
            Key="notes.txt",
            Body=b"<script>document.title = 'evil ran'</script>",
            ContentType="text/plain",
        )

        def presigned(key: str) -> str:
            return s3.generate_presigned_url(
                "get_object", Params={"Bucket": "group-physics", "Key": key}
            )

        s3_link, notes_link = await asyncio.gather(
            asyncio.to_thread(presigned, f"s3-{name}"), asyncio.to_thread(presigned, "notes.txt")
        )

        page = await browser.new_page()
        await log_in(page, router, "alice")
        before = await _credential_ids(router, "alice")

        # The /dav link: the session cookie opens nothing there (401, and nothing runs).
        await _login_asked(page, f"{router.url}/dav/group-physics/{name}")
        assert await page.title() != "evil ran"
        refused = await page.request.get(f"{router.url}/dav/group-physics/{name}")
        assert refused.status == 401
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert refused.headers["content-security-policy"] == CSP

        # bob's presigned S3 link: served as a download, never as a page.
        await page.goto(router.url + "/")
        download = await _download(page, s3_link)
        assert download.suggested_filename == f"s3-{name}"
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            head = (await http.get(s3_link)).headers
        assert head["content-disposition"].startswith("attachment")
        assert head["x-content-type-options"] == "nosniff"
        assert head["content-security-policy"] == CSP

        # The web UI's link to the file: a download with the same headers.
        await page.goto(router.url + "/files/group-physics/")
        async with page.expect_download() as info:
            await page.get_by_role("link", name=name, exact=True).click()
        assert (await info.value).suggested_filename == name
        ui = await page.request.get(f"{router.url}/download/group-physics/{name}")
        assert ui.status == 200
        assert ui.headers["content-disposition"].startswith("attachment")
        assert ui.headers["x-content-type-options"] == "nosniff"
        assert ui.headers["content-security-policy"] == CSP
        assert await ui.body() == evil_page(router)

        # Plain text is shown, as text, in a sandbox: an opaque origin the API refuses.
        assert await _status(page, notes_link) == 200
        await expect(page.locator("body")).to_contain_text("<script>")
        assert await page.title() != "evil ran"
        assert await page.evaluate("window.origin") == "null"
        await page.evaluate(
            """async (api) => {
                try {
                    await fetch(api, {method: "POST", credentials: "include", mode: "no-cors",
                                      headers: {"Content-Type": "text/plain"}, body: "{}"});
                    return "sent";
                } catch (e) { return "blocked"; }
            }""",
            f"{router.url}/api/v1/credentials",
        )

        # The web UI itself still works under its own policy: alice's pages and the API.
        await page.goto(router.url + "/credentials")
        await expect(page.get_by_role("button", name="Create credential")).to_be_visible()
        assert await _credential_ids(router, "alice") == before
    finally:  # the web router is shared: bob's key and files go with this test
        for left in (name, f"s3-{name}", "notes.txt"):
            (router.area / "group" / "physics" / left).unlink(missing_ok=True)
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            await http.delete(
                f"{router.url}/api/v1/credentials/{bob['id']}", headers=await _bearer(router, "bob")
            )
