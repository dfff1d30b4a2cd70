"""Against a real JupyterHub: logins at the real oidc-provider, roles and groups, refusals
through the REST API, the walltime sidecar stopping one server, the token helper refreshing.

One Hub for the module. Access tokens of the Hub's OIDC client live 4 s, so the token helper
refreshes several times within the test; the "quick" instance has a 6 s walltime.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.fixtures.oidc import AUDIENCE, OidcProvider
from tests.hubintegration.livehub import LiveHub

TOKEN_TTL = 4
WALLTIME_S = 6


@pytest.fixture(scope="module")
def hub(
    oidc_provider: OidcProvider,
    values: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveHub]:
    custom = dict(values["custom"])
    instances = dict(custom["computeInstances"])
    instances["quick"] = {
        "display_name": "Quick test",
        "cpu_limit": 1,
        "mem_limit": "1G",
        "walltime_minutes": WALLTIME_S / 60,
    }
    custom["computeInstances"] = instances
    profiles = [dict(p) for p in custom["profiles"]]
    profiles[0]["allowed_compute_instances"] = [*profiles[0]["allowed_compute_instances"], "quick"]
    custom["profiles"] = profiles
    custom["kubepie"] = {
        **custom["kubepie"],
        "walltime": {"warn_before_s": 1},
        "token_helper": {"refresh_margin_s": 60},
    }
    roles = [
        {"name": name, **spec}
        for name, spec in values["hub"]["loadRoles"].items()
        if name != "kubepie-sidecars"
    ]
    live = LiveHub(tmp_path_factory.mktemp("hub"), oidc_provider, custom, roles)
    live.start(access_token_ttl=TOKEN_TTL)
    yield live
    live.stop()


@pytest.fixture(scope="module")
async def sessions(hub: LiveHub) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {name: await hub.login(name) for name in ("alice", "bob", "dave", "rootuser")}
    yield clients
    for client in clients.values():
        await client.aclose()


async def _spawn(hub: LiveHub, user: str, server: str, options: dict[str, Any]) -> httpx.Response:
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    async with hub.admin() as api:
        response = await api.post(path, json=options)
        if response.status_code == 202:
            for _ in range(200):
                model = (await api.get(f"/users/{user}")).json()
                state = model["servers"].get(server, {})
                if state.get("ready"):
                    break
                await asyncio.sleep(0.1)
    return response


async def _servers(hub: LiveHub, user: str) -> dict[str, Any]:
    async with hub.admin() as api:
        servers: dict[str, Any] = (await api.get(f"/users/{user}")).json()["servers"]
    return servers


async def test_login_stores_claims_groups_and_tokens(
    hub: LiveHub, sessions: dict[str, httpx.AsyncClient]
) -> None:
    async with hub.admin() as api:
        alice = (await api.get("/users/alice")).json()
    assert {"beamline-x", "physics"} <= set(alice["groups"])
    claims = alice["auth_state"]["oauth_user"]
    assert (claims["uid"], claims["gid"]) == (10001, 10001)
    assert alice["auth_state"]["refresh_token"]


async def test_profile_choices_follow_roles_and_groups(
    hub: LiveHub, sessions: dict[str, httpx.AsyncClient]
) -> None:
    pages = {}
    for name in ("alice", "bob", "dave"):
        response = await sessions[name].get(f"{hub.url}/hub/spawn/{name}")
        assert response.status_code == 200
        pages[name] = response.text
    # alice holds role a100-20g through her group beamline-x; bob and dave do not
    assert 'value="common/a100_20g"' in pages["alice"]
    assert 'value="beamline/a100_shared"' in pages["alice"]
    assert "Dedicated A100 20G Partition (Limits: 100GB RAM" in pages["alice"]
    assert 'value="common/a100_20g"' not in pages["bob"]
    assert 'value="beamline/' not in pages["bob"]
    assert 'value="common/a100_10g"' in pages["bob"]  # group physics
    assert 'value="common/a100_10g"' not in pages["dave"]
    assert 'value="arc/cpu_small"' in pages["dave"]


async def test_disallowed_profile_through_the_rest_api_is_refused(
    hub: LiveHub, sessions: dict[str, httpx.AsyncClient]
) -> None:
    refused = await _spawn(hub, "bob", "gpu", {"profile": "common", "compute": "a100_20g"})
    assert refused.status_code == 403
    assert "'a100_20g' is not available to bob" in refused.json()["message"]
    refused = await _spawn(hub, "dave", "", {"profile": "beamline"})
    assert refused.status_code == 403
    assert "profile 'beamline' is not available to dave" in refused.json()["message"]
    assert await _servers(hub, "dave") == {}
    unmappable = await _spawn(hub, "rootuser", "", {"profile": "arc"})
    assert unmappable.status_code == 403
    assert "rootuser cannot run a notebook: uid 0 is never mapped" in unmappable.json()["message"]
    allowed = await _spawn(hub, "alice", "big", {"profile": "beamline", "compute": "a100_20g"})
    assert allowed.status_code in (201, 202)
    assert (await _servers(hub, "alice"))["big"]["ready"] is True


async def test_walltime_stops_exactly_its_server(
    hub: LiveHub, sessions: dict[str, httpx.AsyncClient]
) -> None:
    other = await _spawn(hub, "alice", "other", {"profile": "arc"})
    assert other.status_code in (201, 202)
    bob = await _spawn(hub, "bob", "", {"profile": "arc"})
    assert bob.status_code in (201, 202)
    started = time.monotonic()
    quick = await _spawn(hub, "alice", "wt", {"profile": "common", "compute": "quick"})
    assert quick.status_code in (201, 202)
    env = hub.pod("alice", "wt")["walltime_env"]
    token = env["KUBEPIE_HUB_TOKEN"]
    async with httpx.AsyncClient(
        base_url=hub.api, headers={"Authorization": f"token {token}"}, timeout=10
    ) as as_sidecar:
        for path in ("/users/alice/servers/other", "/users/alice/servers/big", "/users/bob/server"):
            assert (await as_sidecar.delete(path)).status_code in (403, 404)
        assert (await as_sidecar.get("/users/alice")).status_code in (403, 404)
        assert (await as_sidecar.post("/users/alice/servers/more")).status_code in (403, 404)
    status_url = f"http://127.0.0.1:{env['KUBEPIE_WALLTIME_PORT']}/"
    status = await _get_json(status_url)
    assert status["total_s"] == WALLTIME_S
    assert 0 <= status["remaining_s"] <= WALLTIME_S
    assert status["user"] == "alice"
    for _ in range(150):
        if "wt" not in await _servers(hub, "alice"):
            break
        await asyncio.sleep(0.1)
    servers = await _servers(hub, "alice")
    assert "wt" not in servers
    assert time.monotonic() - started >= WALLTIME_S - 1
    assert servers["other"]["ready"] is True
    assert servers["big"]["ready"] is True
    assert (await _servers(hub, "bob"))[""]["ready"] is True
    log = (hub.workdir / "pod-alice-wt" / "walltime.log").read_text()
    assert "stops in" in log
    assert "stopping the server of alice" in log


async def _get_json(url: str) -> Any:
    """GET a sidecar endpoint, waiting for the sidecar process to listen (a few seconds)."""
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(50):
            try:
                return (await http.get(url)).json()
            except httpx.ConnectError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens at {url}")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _read_all(directory: Path) -> list[str]:
    return [p.read_text() for p in directory.iterdir() if p.is_file()]


def _verify(token: str, provider: OidcProvider) -> dict[str, Any]:
    key = provider.signing_key.private_key.public_key()
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE)
    return claims


async def test_token_helper_keeps_a_fresh_access_token_and_hides_the_refresh_token(
    hub: LiveHub, sessions: dict[str, httpx.AsyncClient], oidc_provider: OidcProvider
) -> None:
    response = await _spawn(hub, "alice", "tok", {"profile": "arc"})
    assert response.status_code in (201, 202)
    pod = hub.pod("alice", "tok")
    token_file = Path(pod["token_env"]["KUBEPIE_TOKEN_FILE"])
    seen: list[str] = []
    deadline = time.monotonic() + 6 * TOKEN_TTL
    while time.monotonic() < deadline and len(set(seen)) < 4:
        token = await asyncio.to_thread(_read, token_file)
        if token:
            claims = _verify(token, oidc_provider)  # valid now: signature, aud, exp
            assert claims["uid"] == 10001
            seen.append(token)
        await asyncio.sleep(0.2)
    assert len(set(seen)) >= 4, f"only {len(set(seen))} distinct tokens seen"
    async with hub.admin() as api:
        auth_state = (await api.get("/users/alice")).json()["auth_state"]
    refresh_token = auth_state["refresh_token"]
    helper_hub_token = pod["token_env"]["KUBEPIE_HUB_TOKEN"]
    # what the notebook can read: the token volume, the loopback endpoints, its environment
    readable = await asyncio.to_thread(_read_all, Path(pod["token_dir"]))
    async with httpx.AsyncClient(timeout=5) as http:
        endpoint = await http.get(
            f"http://127.0.0.1:{pod['token_env']['KUBEPIE_TOKEN_PORT']}/token"
        )
        readable.append(endpoint.text)
        notebook = sessions["alice"]
        env_page = await notebook.get(f"{hub.url}/user/alice/tok/env")
        readable.append(env_page.text)
    assert endpoint.json()["access_token"]
    _verify(endpoint.json()["access_token"], oidc_provider)
    assert env_page.json()["env"]["BEARER_TOKEN_FILE"] == str(token_file)
    # kubepie-token falls back to the helper's endpoint when the file is not there
    env = {
        **os.environ,
        "BEARER_TOKEN_FILE": str(token_file) + ".missing",
        "KUBEPIE_TOKEN_URL": env_page.json()["env"]["KUBEPIE_TOKEN_URL"],
    }
    for _ in range(5):  # 4 s tokens are replaced 1 s before expiry: one may be too old
        printed = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "kubepie-token")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if printed.returncode == 0:
            break
        await asyncio.sleep(0.3)
    assert printed.returncode == 0, printed.stderr
    _verify(printed.stdout.strip(), oidc_provider)
    for text in readable:
        assert refresh_token not in text
        assert helper_hub_token not in text
