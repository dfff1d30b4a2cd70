"""The JSON API and ``/dav`` against requests another site makes a logged-in browser send.

A page of another origin (another site, the S3 listener's port, a sandboxed user file) can
make the browser POST with the session cookie, as a ``text/plain`` "simple" request that needs
no CORS preflight; before this was refused, such a POST minted an app credential for the
visitor. The session cookie opens the API and the web UI only: never ``/dav``.
"""

from __future__ import annotations

from typing import Any

import httpx

from kubepie.router.login import safe_next
from kubepie.router.origins import CsrfTokens, foreign_reason, origin_of
from tests.kubepie.router.conftest import Router, accounted, basic, browser_login

EVIL = "https://evil.example"


def _bearer(router: Router, user: str) -> dict[str, str]:
    token = router.provider.mint(router.provider.claims_for(user))
    return {"Authorization": f"Bearer {token}"}


async def _credential_ids(router: Router, user: str) -> set[str]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        listed = await http.get(f"{router.url}/api/v1/credentials", headers=_bearer(router, user))
    assert listed.status_code == 200, listed.text
    return {c["id"] for c in listed.json()["credentials"]}


def _cookie_only(web: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client with ``web``'s session cookie and no default Origin header."""
    return httpx.AsyncClient(trust_env=False, timeout=30, cookies=web.cookies)


async def test_cookie_writes_from_other_origins_are_refused(router: Router) -> None:
    web = await browser_login(router, "alice")
    before = await _credential_ids(router, "alice")
    try:
        async with _cookie_only(web) as http:
            url = f"{router.url}/api/v1/credentials"
            plain = {"content-type": "text/plain"}
            cross: Any = await http.post(url, content="{}", headers={**plain, "Origin": EVIL})
            assert cross.status_code == 403, cross.text
            assert "another origin" in cross.json()["message"]
            s3_port = await http.post(url, content="{}", headers={**plain, "Origin": router.s3_url})
            assert s3_port.status_code == 403  # the S3 listener is the same site, not origin
            sandboxed = await http.post(url, content="{}", headers={**plain, "Origin": "null"})
            assert sandboxed.status_code == 403
            fetch_site = await http.post(
                url, content="{}", headers={**plain, "Sec-Fetch-Site": "same-site"}
            )
            assert fetch_site.status_code == 403
            bare = await http.post(url, content="{}", headers=plain)
            assert bare.status_code == 403, bare.text
            assert "x-csrf-token" in bare.json()["message"]
            wrong = await http.post(url, json={}, headers={"X-CSRF-Token": "A" * 43})
            assert wrong.status_code == 403
            assert await _credential_ids(router, "alice") == before  # nothing was minted

            # Our own pages: a same-origin Origin, or the token whoami tells them.
            same = await http.post(url, json={}, headers={"Origin": router.url + "/"})
            assert same.status_code == 201, same.text
            me = (await http.get(f"{router.url}/api/v1/whoami")).json()
            assert me["auth"] == "session"
            token = await http.post(url, json={}, headers={"X-CSRF-Token": me["csrf_token"]})
            assert token.status_code == 201, token.text
            revoke = await http.delete(
                f"{url}/{same.json()['id']}", headers={"X-CSRF-Token": me["csrf_token"]}
            )
            assert revoke.status_code == 204
            foreign_revoke = await http.delete(
                f"{url}/{token.json()['id']}", headers={"Origin": EVIL}
            )
            assert foreign_revoke.status_code == 403
    finally:
        await web.aclose()


async def test_bearer_and_basic_writes_from_other_origins_are_refused(router: Router) -> None:
    url = f"{router.url}/api/v1/credentials"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        bearer = _bearer(router, "alice")
        refused = await http.post(url, json={}, headers={**bearer, "Origin": EVIL})
        assert refused.status_code == 403
        made = await http.post(url, json={}, headers=bearer)  # a command-line client
        assert made.status_code == 201, made.text
        cred = made.json()
        # /dav: a browser replays cached Basic credentials for any page's request.
        auth = basic(cred)
        post = await http.post(
            f"{router.url}/dav/home/x.txt", content=b"x", auth=auth, headers={"Origin": EVIL}
        )
        assert post.status_code == 403
        put = await http.put(
            f"{router.url}/dav/home/csrf.txt",
            content=b"x",
            auth=auth,
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert put.status_code == 403
        assert put.headers["x-content-type-options"] == "nosniff"
        assert not (router.home("alice") / "csrf.txt").exists()
        refusals = await accounted(
            router, lambda e: e["path"] == "/dav/home/csrf.txt" and e["status"] == 403
        )
        assert refusals[-1]["method"] == "PUT"
        ok = await http.put(
            f"{router.url}/dav/home/csrf.txt",
            content=b"x",
            auth=auth,
            headers={"Origin": router.url},
        )
        assert ok.status_code in (201, 204), ok.text
        await http.delete(f"{router.url}/dav/home/csrf.txt", auth=auth)
        await http.delete(f"{url}/{cred['id']}", headers=bearer)


async def test_session_cookie_does_not_open_dav(router: Router) -> None:
    web = await browser_login(router, "alice")
    try:
        (router.home("alice") / "cookie.txt").write_text("x")
        got = await web.get(f"{router.url}/dav/home/cookie.txt")
        assert got.status_code == 401, got.text
        assert any(c.startswith("Basic") for c in got.headers.get_list("www-authenticate"))
        listing = await web.request("PROPFIND", f"{router.url}/dav/home/")
        assert listing.status_code == 401
        assert (await web.get(f"{router.url}/api/v1/whoami")).status_code == 200
    finally:
        (router.home("alice") / "cookie.txt").unlink(missing_ok=True)
        await web.aclose()


async def test_logout_from_another_site_is_refused(router: Router) -> None:
    web = await browser_login(router, "alice")
    try:
        del web.headers["Origin"]
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": EVIL}):
            out = await web.get(f"{router.url}/logout", headers=headers)
            assert out.status_code == 403, out.text
            assert (await web.get(f"{router.url}/api/v1/whoami")).status_code == 200
    finally:
        await web.aclose()


def test_origins_and_tokens() -> None:
    assert origin_of("https://Files.Example.org:443/x") == "https://files.example.org"
    assert origin_of("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert origin_of("null") == ""
    public = "https://files.example.org"
    assert foreign_reason({"origin": "https://files.example.org"}, public) is None
    assert foreign_reason({"sec-fetch-site": "same-origin"}, public) is None
    assert foreign_reason({"sec-fetch-site": "none"}, public) is None
    assert foreign_reason({}, public) is None
    assert foreign_reason({"origin": "https://files.example.org:9000"}, public)
    assert foreign_reason({"origin": "null"}, public)
    assert foreign_reason({"sec-fetch-site": "cross-site"}, public)
    tokens = CsrfTokens.from_material(b"k" * 32)
    token = tokens.token("v1.session")
    assert tokens.valid("v1.session", token)
    assert not tokens.valid("v1.other", token)
    assert not tokens.valid(None, token)
    assert not tokens.valid("v1.session", None)


def test_login_next_is_a_local_path_only() -> None:
    assert safe_next("/files/home/") == "/files/home/"
    for bad in ("//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/x", "https://x", ""):
        assert safe_next(bad) == "/", bad
