"""The web UI in headless Chromium (Playwright) against the real router, with the real
oidc-provider as issuer: log in through the provider's pages, browse, upload and download back
byte-identical, new folder, rename, delete, credentials used with boto3 and revoked, error
pages, a forged form post refused, log out. Screenshots of each page go to
``test-artifacts/web/`` (kept by CI as artifacts)."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client
from playwright.async_api import BrowserContext, Page, expect

from tests.kubepie.router.conftest import Router
from tests.kubepie.web.conftest import DESKTOP, PHONE, shot


async def log_in(page: Page, router: Router, username: str) -> None:
    """Through the provider's own login and consent pages, as a person would."""
    await page.goto(router.url + "/")
    await shot(page, "01-landing")
    await page.get_by_role("link", name="Log in").click()
    await page.wait_for_url(re.compile(re.escape(router.provider.issuer) + ".*"))
    await page.locator("input[name=login]").fill(username)
    await page.locator("input[name=password]").fill("any-password")
    await page.locator("button[type=submit]").click()
    consent = page.locator("button[type=submit]", has_text=re.compile("Continue", re.I))
    if await consent.count():
        await consent.click()
    await page.wait_for_url(router.url + "/")


def read_file(path: Path) -> bytes:
    return path.read_bytes()


def boto3_values(snippet: str) -> dict[str, str]:
    """The values the page's boto3 snippet shows."""
    found = dict(re.findall(r'^\s+(\w+)="([^"]*)",$', snippet, re.M))
    return {k: found[k] for k in ("endpoint_url", "aws_access_key_id", "aws_secret_access_key")}


def s3_client(values: dict[str, str]) -> S3Client:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=values["endpoint_url"],
        aws_access_key_id=values["aws_access_key_id"],
        aws_secret_access_key=values["aws_secret_access_key"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


async def test_web_ui_end_to_end(
    web_router: Router, browser: BrowserContext, tmp_path: Path
) -> None:
    router = web_router
    page = await browser.new_page()
    await log_in(page, router, "alice")

    # Home: the user's mounts.
    await expect(page.get_by_role("heading", name="Your files")).to_be_visible()
    mounts = await page.locator(".cards .name").all_inner_texts()
    assert mounts == ["home", "data", "group-alice", "group-beamline-x", "group-physics"]
    await shot(page, "02-home")

    # Browse into home; upload two files (one of 3 MiB) with the progress-bar form.
    await page.get_by_role("link", name=re.compile(r"^\W*home")).click()
    await page.wait_for_url(router.url + "/files/home/")
    payload = secrets.token_bytes(3 * 1024 * 1024 + 17)
    big, notes = tmp_path / "measurements.bin", tmp_path / "notes from the beamline.txt"
    big.write_bytes(payload)
    notes.write_text("sample 42: ok\n")
    await page.get_by_label("Files", exact=True).set_input_files([big, notes])
    await page.get_by_role("button", name="Upload").click()
    await page.wait_for_url(re.compile(r".*/files/home/\?done=upload&n=2$"))
    await expect(page.get_by_role("status").first).to_have_text("Uploaded 2 file(s).")
    stored = router.home("alice") / "measurements.bin"
    assert stored.read_bytes() == payload
    assert stored.stat().st_uid == 10001  # written by alice's own server, as alice
    await expect(page.get_by_role("cell", name="3.0 MiB")).to_be_visible()
    await shot(page, "03-folder-after-upload")

    # Download it back: byte-identical.
    async with page.expect_download() as info:
        await page.get_by_role("link", name="measurements.bin", exact=True).click()
    download = await info.value
    assert download.suggested_filename == "measurements.bin"
    assert read_file(await download.path()) == payload

    # New folder, rename it (a page of its own), then open it: breadcrumbs.
    await page.get_by_label("Folder name").fill("run 7")
    await page.get_by_role("button", name="Create folder").click()
    await expect(page.get_by_role("status").first).to_have_text("Folder created.")
    await page.get_by_role("link", name="Rename run 7").click()
    await expect(page.get_by_role("heading", name="Rename run 7")).to_be_visible()
    await shot(page, "04-rename")
    await page.get_by_label("New name").fill("run 7 (final)")
    await page.get_by_role("button", name="Rename").click()
    await expect(page.get_by_role("status").first).to_have_text("Renamed.")
    assert (router.home("alice") / "run 7 (final)").is_dir()
    assert not (router.home("alice") / "run 7").exists()
    await page.get_by_role("link", name="run 7 (final)/", exact=True).click()
    crumbs = page.get_by_role("navigation", name="Breadcrumbs")
    await expect(crumbs).to_contain_text("home")
    await expect(crumbs).to_contain_text("run 7 (final)")
    dav = page.get_by_label("WebDAV", exact=True)
    await expect(dav).to_have_value(f"{router.url}/dav/home/run%207%20%28final%29/")
    await expect(page.get_by_label("S3", exact=True)).to_have_value("s3://home/run 7 (final)/")
    await shot(page, "05-subfolder")
    await crumbs.get_by_role("link", name="home").click()

    # Delete with a confirmation step.
    await page.get_by_role("link", name="Delete notes from the beamline.txt").click()
    await expect(page.get_by_role("heading", name=re.compile("Delete notes"))).to_be_visible()
    await shot(page, "06-delete-confirm")
    assert (router.home("alice") / "notes from the beamline.txt").exists()
    await page.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("status").first).to_have_text("Deleted.")
    assert not (router.home("alice") / "notes from the beamline.txt").exists()

    # The same folder on a phone.
    await page.set_viewport_size(PHONE)
    await shot(page, "07-folder-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.set_viewport_size(DESKTOP)

    # Who am I.
    await page.get_by_role("link", name="alice", exact=True).click()
    facts = page.locator("dl.facts")
    await expect(facts).to_contain_text("10001")
    await expect(facts).to_contain_text("beamline-x, physics")
    await expect(facts).to_contain_text("claims")
    await shot(page, "08-whoami")

    # Credentials: create one, use the shown boto3 values, revoke it, boto3 is refused.
    await page.get_by_role("link", name="Credentials").click()
    await page.get_by_label("Description").fill("analysis laptop")
    await page.get_by_label("Expires after").select_option("7d")
    await page.get_by_role("button", name="Create credential").click()
    created = page.get_by_role("heading", name=re.compile("copy the secret now"))
    await expect(created).to_be_visible()
    await shot(page, "09-credential-created")
    await page.set_viewport_size(PHONE)
    await shot(page, "09-credential-created-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.set_viewport_size(DESKTOP)
    snippet = await page.locator("code.python").inner_text()
    values = boto3_values(snippet)
    assert values["endpoint_url"] == router.s3_url
    assert (
        await page.get_by_label("Secret access key").input_value()
        == (values["aws_secret_access_key"])
    )
    s3 = s3_client(values)
    listing = await asyncio.to_thread(s3.list_objects_v2, Bucket="home")
    assert "measurements.bin" in [o["Key"] for o in listing.get("Contents", [])]
    body = await asyncio.to_thread(s3.get_object, Bucket="home", Key="measurements.bin")
    assert await asyncio.to_thread(body["Body"].read) == payload

    await page.goto(router.url + "/credentials")
    assert values["aws_secret_access_key"] not in await page.content()  # shown once only
    key_id = values["aws_access_key_id"]
    await shot(page, "10-credentials")
    await page.get_by_role("button", name=f"Revoke {key_id}").click()
    await expect(page.get_by_role("status").first).to_have_text("Credential revoked.")
    with pytest.raises(ClientError) as refused:
        await asyncio.to_thread(s3.list_objects_v2, Bucket="home")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # Error pages: a refused write names the missing permission; no such folder is a 404.
    await page.goto(router.url + "/files/data/")
    await page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "?op=mkdir";
            const token = document.querySelector("input[name=csrf_token]").cloneNode();
            const name = Object.assign(document.createElement("input"), {name: "name"});
            name.value = "mine";
            form.append(token, name);
            document.body.append(form);
            form.submit();
        }"""
    )
    await expect(page.get_by_role("heading", name="Permission denied")).to_be_visible()
    await expect(page.locator(".what")).to_contain_text("write permission on the folder /data")
    await expect(page.locator(".what")).to_contain_text("data is read-only for everyone")
    await shot(page, "11-error-403")
    response = await page.goto(router.url + "/files/home/no-such-folder/")
    assert response is not None
    assert response.status == 404
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await shot(page, "12-error-404")

    # A forged post (the session cookie, no token or another token) changes nothing.
    forged = await page.request.post(
        router.url + "/files/home/?op=mkdir", form={"name": "forged"}, max_redirects=0
    )
    assert forged.status == 403
    wrong = await page.request.post(
        router.url + "/files/home/?op=mkdir",
        form={"name": "forged", "csrf_token": "A" * 43},
        max_redirects=0,
    )
    assert wrong.status == 403
    assert not (router.home("alice") / "forged").exists()

    # Log out (the provider asks to confirm); afterwards pages offer the login again.
    await page.goto(router.url + "/")
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(re.escape(router.provider.issuer) + ".*"))
    await shot(page, "13-provider-logout")
    confirm = page.locator("button[type=submit]", has_text=re.compile("sign me out", re.I))
    if await confirm.count():
        await confirm.click()
    response = await page.goto(router.url + "/credentials")
    assert response is not None
    assert response.status == 401
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()
    await shot(page, "14-error-401")
    await page.goto(router.url + "/")
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()
