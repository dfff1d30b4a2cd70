"""Browser login through the real provider's pages, the session cookie, whoami, logout."""

from __future__ import annotations

import httpx

from tests.fixtures.oidc import drive_login
from tests.kubepie.router.conftest import Router, accounted, browser_login


async def test_login_reaches_whoami(router: Router) -> None:
    http = await browser_login(router, "alice")
    try:
        response = await http.get(f"{router.url}/api/v1/whoami")
        assert response.status_code == 200, response.text
        me = response.json()
        assert me["username"] == "alice"
        assert (me["uid"], me["gid"]) == (10001, 10001)
        assert me["gids"] == [10001, 20001, 20002]
        assert set(me["groups"]) == {"alice", "physics", "beamline-x"}
        assert me["auth"] == "session"
        mine = await accounted(
            router, lambda e: e["path"] == "/api/v1/whoami" and e["status"] == 200
        )
        assert mine[-1]["username"] == "alice"
        assert mine[-1]["auth"] == "session"
        assert "kubepie_session" not in router.accounting.read_text()
        cookie = next(c for c in http.cookies.jar if c.name == "kubepie_session")
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert "alice" not in (cookie.value or "")  # sealed, not readable

        logout = await http.get(f"{router.url}/logout")
        assert logout.status_code == 302
        assert logout.headers["location"].startswith(router.provider.issuer)
        after = await http.get(f"{router.url}/api/v1/whoami")
        assert after.status_code == 401
    finally:
        await http.aclose()


async def test_whoami_without_credentials_is_401_with_challenges(router: Router) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"{router.url}/api/v1/whoami")
        wrong_method = await http.put(f"{router.url}/api/v1/whoami")
        missing = await http.get(f"{router.url}/api/v2/nothing")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "HTTPException"
    assert missing.status_code == 404
    assert missing.json()["error"] == "HTTPException"
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthenticated"
    challenges = response.headers.get_list("www-authenticate")
    assert any(c.startswith("Bearer") for c in challenges)
    assert any(c.startswith("Basic") for c in challenges)


async def test_callback_refuses_forged_or_unmappable_logins(router: Router) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        # No login in progress: a callback is refused (login CSRF).
        forged = await http.get(f"{router.url}/callback?code=abc&state=xyz")
        assert forged.status_code == 400
        start = await http.get(f"{router.url}/login")
        assert start.status_code == 302
        assert "code_challenge_method=S256" in start.headers["location"]
        assert "nonce=" in start.headers["location"]
        wrong_state = await http.get(f"{router.url}/callback?code=abc&state=not-the-state")
        assert wrong_state.status_code == 400
        assert "state" in wrong_state.json()["message"]

    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        callback = await drive_login(
            http, f"{router.url}/login", "rootuser", issuer=router.provider.issuer
        )
        refused = await http.get(callback)
        assert refused.status_code == 403
        assert "kubepie_session" not in http.cookies
