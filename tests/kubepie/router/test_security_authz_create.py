"""WLCG ``storage.create``: a token that may create but not modify uploads new files the way
grid clients do (a plain PUT, no ``If-None-Match``), and never replaces or removes one,
whatever the request says. Real router, real oidc-provider tokens, real file servers."""

from __future__ import annotations

import secrets

import httpx

from tests.kubepie.router.conftest import Router, basic, browser_login, create_credential


async def _folder_with_files(router: Router, *files: str) -> tuple[str, str]:
    """A fresh folder of alice's holding ``files`` (each containing its own name), and its
    WebDAV URL."""
    folder = f"authz-create-{secrets.token_hex(4)}"
    web = await browser_login(router, "alice")
    try:
        alice = await create_credential(web, router)
    finally:
        await web.aclose()
    url = f"{router.url}/dav/home/{folder}"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        made = await http.request("MKCOL", f"{url}/", auth=basic(alice))
        assert made.status_code == 201, made.text
        for name in files:
            put = await http.put(f"{url}/{name}", content=name.encode(), auth=basic(alice))
            assert put.status_code == 201, put.text
    return folder, url


async def _create_token(router: Router, folder: str) -> dict[str, str]:
    tokens = await router.provider.login(
        "alice", scopes=(f"storage.create:/home/{folder}", f"storage.read:/home/{folder}")
    )
    return {"Authorization": f"Bearer {tokens.access_token}"}


async def test_create_token_never_replaces_or_removes(router: Router) -> None:
    folder, url = await _folder_with_files(router, "keep.txt", "src.txt")
    bearer = await _create_token(router, folder)
    async with httpx.AsyncClient(trust_env=False, timeout=30, headers=bearer) as http:
        plain = await http.put(f"{url}/keep.txt", content=b"replaced")
        assert plain.status_code == 403, plain.text
        guarded = await http.put(
            f"{url}/keep.txt", content=b"replaced", headers={"If-None-Match": "*"}
        )
        assert guarded.status_code in (403, 412), guarded.text
        copied = await http.request(
            "COPY", f"{url}/src.txt", headers={"Destination": f"{url}/keep.txt"}
        )
        assert copied.status_code in (403, 412), copied.text
        moved = await http.request(
            "MOVE", f"{url}/src.txt", headers={"Destination": f"{url}/new.txt"}
        )
        assert moved.status_code == 403, moved.text
        deleted = await http.delete(f"{url}/keep.txt")
        assert deleted.status_code == 403, deleted.text
    home = router.home("alice") / folder
    assert (home / "keep.txt").read_bytes() == b"keep.txt"
    assert (home / "src.txt").read_bytes() == b"src.txt"
    assert not (home / "new.txt").exists()


async def test_create_token_creates_new_files(router: Router) -> None:
    folder, url = await _folder_with_files(router, "src.txt")
    bearer = await _create_token(router, folder)
    async with httpx.AsyncClient(trust_env=False, timeout=30, headers=bearer) as http:
        put = await http.put(f"{url}/new.txt", content=b"first")
        assert put.status_code == 201, put.text
        again = await http.put(f"{url}/new.txt", content=b"second")
        assert again.status_code == 403, again.text
        made = await http.request("MKCOL", f"{url}/sub/")
        assert made.status_code == 201, made.text
        inner = await http.put(f"{url}/sub/inner.txt", content=b"inner")
        assert inner.status_code == 201, inner.text
        copied = await http.request(
            "COPY", f"{url}/src.txt", headers={"Destination": f"{url}/copy.txt"}
        )
        assert copied.status_code == 201, copied.text
        read = await http.get(f"{url}/new.txt")
        assert read.content == b"first"
    home = router.home("alice") / folder
    assert (home / "new.txt").read_bytes() == b"first"
    assert (home / "sub" / "inner.txt").read_bytes() == b"inner"
    assert (home / "copy.txt").read_bytes() == b"src.txt"
