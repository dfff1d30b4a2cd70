"""Answers that carry user content are passive in a browser: ``nosniff``, a sandbox policy on
every ``/dav`` and S3 answer (errors too), and ``Content-Disposition: attachment`` for every
type that could run code (HTML, SVG, XML, JavaScript, PDF, no type at all). Plain text, images
and the file server's own folder listing are still shown."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest

from kubepie.router.content_security import USER_CONTENT_CSP, secure_head, shown_inline
from tests.kubepie.router.conftest import Router, basic
from tests.kubepie.router.test_s3 import s3_client

CSP = USER_CONTENT_CSP.decode()
FILES = {
    "evil.html": b"<script>fetch('/api/v1/credentials', {method: 'POST'})</script>",
    "evil.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "notes.txt": b"<script>alert(1)</script>",
    "photo.png": b"\x89PNG\r\n\x1a\n",
}


@pytest.fixture(scope="module")
async def alice(router: Router) -> dict[str, Any]:
    token = router.provider.mint(router.provider.claims_for("alice"))
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        made = await http.post(
            f"{router.url}/api/v1/credentials",
            json={},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert made.status_code == 201, made.text
    folder = router.home("alice") / "content"
    folder.mkdir(exist_ok=True)
    os.chown(folder, 10001, 10001)
    for name, body in FILES.items():
        (folder / name).write_bytes(body)
        os.chown(folder / name, 10001, 10001)
    cred: dict[str, Any] = made.json()
    return cred


def _user_content(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == CSP
    assert "sandbox" in CSP
    assert "default-src 'none'" in CSP


async def test_dav_answers_are_passive(router: Router, alice: dict[str, Any]) -> None:
    url = f"{router.url}/dav/home/content"
    async with httpx.AsyncClient(trust_env=False, timeout=30, auth=basic(alice)) as http:
        for name in ("evil.html", "evil.svg"):
            got = await http.get(f"{url}/{name}")
            assert got.status_code == 200
            assert got.content == FILES[name]  # the bytes are untouched
            _user_content(got)
            assert got.headers["content-disposition"].startswith(f'attachment; filename="{name}"')
            head = await http.head(f"{url}/{name}")
            assert head.headers["content-disposition"].startswith("attachment")
        for name in ("notes.txt", "photo.png"):
            shown = await http.get(f"{url}/{name}")
            _user_content(shown)
            assert "content-disposition" not in shown.headers
        listing = await http.get(f"{url}/")
        assert listing.headers["content-type"].startswith("text/html")
        assert "content-disposition" not in listing.headers  # shown, sandboxed
        _user_content(listing)
        assert "evil.html" in listing.text
        # A file's name with a slash after it is no listing: downloaded or shown as a passive
        # type, never as a page.
        slash = await http.get(f"{url}/evil.html/")
        _user_content(slash)
        if slash.status_code < 300:
            disposition = slash.headers.get("content-disposition", "")
            ctype = slash.headers["content-type"].encode()
            assert disposition.startswith("attachment") or shown_inline(ctype)
        missing = await http.get(f"{url}/nothing.html")
        assert missing.status_code == 404
        _user_content(missing)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as anonymous:
        refused = await anonymous.get(f"{url}/evil.html")
        assert refused.status_code == 401
        _user_content(refused)


async def test_s3_objects_are_passive(router: Router, alice: dict[str, Any]) -> None:
    s3 = s3_client(router, alice)
    # Stored with the type its uploader chose: an HTML page.
    await asyncio.to_thread(
        s3.put_object,
        Bucket="home",
        Key="content/s3-evil.html",
        Body=FILES["evil.html"],
        ContentType="text/html",
    )
    for key, body in (("s3-evil.html", FILES["evil.html"]), ("notes.txt", FILES["notes.txt"])):
        link = await asyncio.to_thread(
            s3.generate_presigned_url,
            "get_object",
            Params={"Bucket": "home", "Key": f"content/{key}"},
        )
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            got = await http.get(link)
        assert got.status_code == 200, got.text
        assert got.content == body
        _user_content(got)
        disposition = got.headers.get("content-disposition", "")
        if key == "s3-evil.html":
            assert got.headers["content-type"] == "text/html"
            assert disposition.startswith('attachment; filename="s3-evil.html"')
        else:
            assert disposition.startswith("attachment") or shown_inline(
                got.headers["content-type"].encode()
            )
    html_type = await asyncio.to_thread(
        s3.generate_presigned_url,
        "get_object",
        Params={"Bucket": "home", "Key": "content/notes.txt", "ResponseContentType": "text/html"},
    )
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        forced = await http.get(html_type)
        missing = await http.get(f"{router.s3_url}/home/nothing")
    if forced.status_code == 200:  # a type asked for in the query is judged the same way
        assert forced.headers["content-disposition"].startswith("attachment")
    _user_content(forced)
    _user_content(missing)


def test_secure_head() -> None:
    def head(ctype: bytes | None, **kw: Any) -> dict[bytes, bytes]:
        headers = [(b"content-type", ctype)] if ctype is not None else []
        args: dict[str, Any] = {
            "method": "GET",
            "status": 200,
            "path": "/dav/h/f",
            "listings": True,
        }
        return dict(secure_head(headers, **{**args, **kw}))

    for active in (
        b"text/html",
        b"TEXT/HTML; charset=utf-8",
        b"application/xhtml+xml",
        b"image/svg+xml",
        b"text/xml",
        b"application/xml",
        b"text/javascript",
        b"application/pdf",
        b"",
        None,
    ):
        assert (
            head(active)[b"content-disposition"]
            == b"attachment; filename=\"f\"; filename*=UTF-8''f"
        )
    for passive in (b"text/plain; charset=utf-8", b"image/png", b"video/mp4", b"application/json"):
        assert b"content-disposition" not in head(passive)
        assert shown_inline(passive)
    assert b"content-disposition" not in head(b"text/html", path="/dav/h/")  # a listing
    assert b"content-disposition" in head(b"text/html", path="/dav/h/", listings=False)
    assert b"content-disposition" not in head(b"text/html", status=404)
    assert b"content-disposition" not in head(b"text/html", method="PROPFIND")
    kept = secure_head(
        [(b"content-type", b"text/html"), (b"content-disposition", b"attachment; filename=x")],
        method="GET",
        status=200,
        path="/b/k",
        listings=False,
    )
    assert dict(kept)[b"content-disposition"] == b"attachment; filename=x"
    replaced = secure_head(
        [
            (b"content-type", b"text/html"),
            (b"content-disposition", b"inline"),
            (b"content-security-policy", b"script-src *"),
            (b"x-content-type-options", b"sniff"),
        ],
        method="GET",
        status=200,
        path="/b/k%20%C3%A9.html",
        listings=False,
    )
    assert [v for n, v in replaced if n == b"content-security-policy"] == [USER_CONTENT_CSP]
    assert [v for n, v in replaced if n == b"x-content-type-options"] == [b"nosniff"]
    disposition = dict(replaced)[b"content-disposition"]
    assert disposition.endswith(b"UTF-8''k%20%C3%A9.html")
