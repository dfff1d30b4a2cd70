"""The UI's forms and error pages over plain HTTP against the real router (no JavaScript, as
a browser without it sends them): a large upload streams through the router with flat memory,
forged posts change nothing, and errors are pages for browsers but keep their JSON or text
format for API and WebDAV clients."""

from __future__ import annotations

import asyncio
import html
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.kubepie.router.conftest import Router, browser_login
from tests.kubepie.web.test_browser import boto3_values, s3_client

MIB = 1024 * 1024
HTML = {"accept": "text/html,application/xhtml+xml"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def csrf_token(http: httpx.AsyncClient, url: str) -> str:
    page = await http.get(url, headers=HTML)
    assert page.status_code == 200, page.text
    found = _TOKEN.search(page.text)
    assert found is not None
    return found.group(1)


async def test_large_upload_streams_through_the_router(web_router: Router) -> None:
    """A 128 MiB file in a multipart form: the router's memory stays flat (it never holds the
    file), and what lands in bob's home, as bob, is exactly what was sent."""
    router = web_router
    assert router.proc is not None
    pid = router.proc.pid
    size, block = 128 * MIB, os.urandom(MIB)
    boundary = "kubepie" + secrets.token_hex(8)
    http = await browser_login(router, "bob")
    try:
        token = await csrf_token(http, f"{router.url}/files/home/")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f"{token}\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f'name="files"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        baseline = rss_mb(pid)
        peak = baseline

        async def body() -> AsyncIterator[bytes]:
            nonlocal peak
            yield head
            for i in range(size // MIB):
                if i % 8 == 0:
                    peak = max(peak, rss_mb(pid))
                yield block
            yield tail

        response = await http.post(
            f"{router.url}/files/home/?op=upload",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            timeout=120,
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/files/home/?done=upload&n=1"
        stored = router.home("bob") / "big.bin"
        assert stored.stat().st_size == size
        assert stored.stat().st_uid == 10002
        with stored.open("rb") as f:
            assert f.read(MIB) == block
        assert peak - baseline < 48, (baseline, peak)
    finally:
        await http.aclose()
        (router.home("bob") / "big.bin").unlink(missing_ok=True)


async def test_forged_posts_change_nothing(web_router: Router) -> None:
    router = web_router
    http = await browser_login(router, "carol")
    other = await browser_login(router, "carol")  # another session of the same user
    try:
        token = await csrf_token(http, f"{router.url}/files/home/")
        theirs = await csrf_token(other, f"{router.url}/files/home/")
        assert token != theirs  # per session
        url = f"{router.url}/files/home/?op=mkdir"
        for form in ({"name": "forged"}, {"name": "forged", "csrf_token": theirs}):
            refused = await http.post(url, data=form, headers=HTML)
            assert refused.status_code == 403
            assert "Form refused" in refused.text
        upload = await http.post(
            f"{router.url}/files/home/?op=upload",
            files={"files": ("forged.txt", b"x")},
            data={"csrf_token": "wrong"},
        )
        assert upload.status_code == 403
        assert not (router.home("carol") / "forged").exists()
        assert not (router.home("carol") / "forged.txt").exists()
        credentials = await http.post(f"{router.url}/credentials", data={"expires": "1d"})
        assert credentials.status_code == 403
        listed = await http.get(f"{router.url}/api/v1/credentials")
        assert listed.json() == {"credentials": []}
        # With the token the same form works, and without JavaScript: a 303 to the folder.
        done = await http.post(url, data={"name": "made", "csrf_token": token})
        assert done.status_code == 303
        assert (router.home("carol") / "made").is_dir()
    finally:
        await http.aclose()
        await other.aclose()


async def test_errors_are_pages_for_browsers_only(web_router: Router) -> None:
    router = web_router
    async with httpx.AsyncClient(trust_env=False, timeout=30) as anonymous:
        page = await anonymous.get(f"{router.url}/callback?state=x&code=y", headers=HTML)
        assert page.status_code == 400
        assert page.headers["content-type"].startswith("text/html")
        assert "start again" in page.text
        api = await anonymous.get(f"{router.url}/callback?state=x&code=y")
        assert api.status_code == 400
        assert api.json()["error"] == "LoginFailed"

        missing = await anonymous.get(f"{router.url}/no/such/page", headers=HTML)
        assert missing.status_code == 404
        assert "Not found" in missing.text
        assert (await anonymous.get(f"{router.url}/no/such/page")).json()["error"]

        login = await anonymous.get(f"{router.url}/files/home/", headers=HTML)
        assert login.status_code == 401
        assert login.headers["www-authenticate"] == 'Bearer realm="kubepie"'
        assert 'href="/login?next=/files/home/"' in login.text

        whoami = await anonymous.get(f"{router.url}/api/v1/whoami", headers=HTML)
        assert whoami.status_code == 401
        assert whoami.json()["error"] == "Unauthenticated"  # the API keeps JSON
        dav = await anonymous.get(f"{router.url}/dav/home/", headers=HTML)
        assert dav.status_code == 401
        assert dav.headers["content-type"].startswith("text/plain")  # WebDAV keeps its text
        assert len(dav.headers.get_list("www-authenticate")) == 2


async def test_downloads_are_attachments_of_the_users_own_files(web_router: Router) -> None:
    router = web_router
    http = await browser_login(router, "dave")
    try:
        token = await csrf_token(http, f"{router.url}/files/home/")
        stored = await http.post(
            f"{router.url}/files/home/?op=upload",
            data={"csrf_token": token},
            files={"files": ("résumé 1.txt", b"dave's notes\n")},
        )
        assert stored.status_code == 303
        url = f"{router.url}/download/home/r%C3%A9sum%C3%A9%201.txt"
        got = await http.get(url)
        assert got.status_code == 200
        assert got.content == b"dave's notes\n"
        assert got.headers["content-disposition"].endswith("UTF-8''r%C3%A9sum%C3%A9%201.txt")
        head = await http.head(url)
        assert head.status_code == 200
        assert head.headers["content-length"] == "13"
        assert head.content == b""
        # Carol's group area is no mount of dave's: the page says so, nothing is served.
        other = await http.get(f"{router.url}/download/group-carol/notes.txt", headers=HTML)
        assert other.status_code == 404
        assert "Not found" in other.text
        traversal = await http.get(f"{router.url}/download/home/%2E%2E/carol/x", headers=HTML)
        assert traversal.status_code == 400
    finally:
        await http.aclose()


async def test_odd_names_are_taken_as_they_are(web_router: Router) -> None:
    """A name with spaces around it is deleted as itself, never as the trimmed name; a file
    opened as a folder is a 404 page that says it is a file."""
    router = web_router
    home = router.home("dave")
    for name in (" y ", "y"):
        (home / name).write_bytes(b"keep")
        os.chown(home / name, 10004, 10004)
    http = await browser_login(router, "dave")
    try:
        token = await csrf_token(http, f"{router.url}/files/home/")
        listed = await http.get(f"{router.url}/files/home/", headers=HTML)
        assert "?delete=%20y%20" in listed.text
        deleted = await http.post(
            f"{router.url}/files/home/?op=delete", data={"name": " y ", "csrf_token": token}
        )
        assert deleted.status_code == 303
        assert not (home / " y ").exists()
        assert (home / "y").read_bytes() == b"keep"
        file_as_folder = await http.get(f"{router.url}/files/home/y/", headers=HTML)
        assert file_as_folder.status_code == 404
        assert "/home/y is a file, not a folder." in file_as_folder.text
    finally:
        await http.aclose()
        (home / "y").unlink(missing_ok=True)


async def test_a_refused_credential_is_said_next_to_the_form(web_router: Router) -> None:
    router = web_router
    http = await browser_login(router, "bob")
    try:
        token = await csrf_token(http, f"{router.url}/credentials")
        refused = await http.post(
            f"{router.url}/credentials",
            data={
                "csrf_token": token,
                "description": "sync job",
                "prefix": "home/../carol",
                "expires": "90d",
                "read_only": "on",
            },
        )
        assert refused.status_code == 400
        assert "Not created: prefix segment &#39;..&#39; is not allowed" in refused.text
        assert 'value="home/../carol"' in refused.text  # what was typed is kept
        assert 'value="sync job"' in refused.text
        assert '<option value="90d" selected>' in refused.text
        assert 'name="read_only" checked' in refused.text
        listed = await http.get(f"{router.url}/api/v1/credentials")
        assert listed.json() == {"credentials": []}
    finally:
        await http.aclose()


async def test_a_read_only_credential_confined_to_a_folder(web_router: Router) -> None:
    """The create form's read-only flag and prefix hold for the credential the page shows, and
    its examples point inside the prefix."""
    router = web_router
    folder = router.home("carol") / "shared run"
    folder.mkdir(exist_ok=True)
    os.chown(folder, 10003, 10003)
    (folder / "result.csv").write_bytes(b"a,b\n1,2\n")
    os.chown(folder / "result.csv", 10003, 10003)
    http = await browser_login(router, "carol")
    try:
        token = await csrf_token(http, f"{router.url}/credentials")
        page = await http.post(
            f"{router.url}/credentials",
            data={
                "csrf_token": token,
                "prefix": "home/shared run",
                "read_only": "on",
                "expires": "1d",
            },
        )
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        snippet = re.search(r'<code id="code-\d+" class="python">(.*?)</code>', page.text, re.S)
        assert snippet is not None
        code = html.unescape(snippet.group(1))
        assert 'Bucket="home", Prefix="shared run/"' in code
        values = boto3_values(code)
        s3 = s3_client(values)
        listing = await asyncio.to_thread(s3.list_objects_v2, Bucket="home", Prefix="shared run/")
        assert [o["Key"] for o in listing["Contents"]] == ["shared run/result.csv"]
        # One client per refused call: after a write refused before its body, a kept-alive
        # connection is not reused reliably (reported to the router's owner).
        for refused_call in (
            lambda: s3_client(values).list_objects_v2(Bucket="home"),
            lambda: s3_client(values).put_object(Bucket="home", Key="shared run/n", Body=b"x"),
        ):
            with pytest.raises(ClientError) as refused:
                await asyncio.to_thread(refused_call)
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert not (folder / "n").exists()
        listed = (await http.get(f"{router.url}/credentials")).text
        assert "read-only" in listed
        assert "in /home/shared run" in listed
    finally:
        await http.aclose()
