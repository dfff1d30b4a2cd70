"""Per-user servers behind the router, seen from outside: one start for fifty concurrent first
requests, a killed server back on the next request, idle servers stopped, credentials kept
over a router restart; metrics and health."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import httpx

from tests.kubepie.router.conftest import (
    IDLE_TIMEOUT,
    Router,
    basic,
    browser_login,
    create_credential,
)

#: PROPFIND needs a finite Depth: without one (infinity) the file server answers 403.
DEPTH_1 = {"Depth": "1"}


def _user(router: Router, name: str, uid: int) -> dict[str, str]:
    """A bearer token for a user known only by its claims, with a home directory."""
    home = router.home(name)
    home.mkdir(exist_ok=True)
    os.chown(home, uid, uid)
    claims = router.provider.claims_for(
        name, preferred_username=name, uid=uid, gid=uid, gids=[uid], groups=[]
    )
    return {"Authorization": f"Bearer {router.provider.mint(claims)}"}


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
            if int(uids.split()[1]) == uid:
                pids.append(int(entry.name))
    return pids


async def test_fifty_first_requests_start_one_server_and_a_killed_one_comes_back(
    router: Router,
) -> None:
    headers = _user(router, "lifecycle1", 10031)
    async with httpx.AsyncClient(trust_env=False, timeout=60, headers=headers) as http:
        before = _metric(
            (await http.get(f"{router.url}/metrics")).text, "kubepie_backend_spawn_seconds_count"
        )
        answers = await asyncio.gather(
            *(
                http.request("PROPFIND", f"{router.url}/dav/home/", headers={"Depth": "0"})
                for _ in range(50)
            )
        )
        assert [r.status_code for r in answers] == [207] * 50
        metrics = (await http.get(f"{router.url}/metrics")).text
        assert _metric(metrics, "kubepie_backend_spawn_seconds_count") == before + 1
        assert _metric(metrics, "kubepie_servers_running") >= 1
        assert 'kubepie_requests_total{listener="dav",method="PROPFIND",status="207"}' in metrics

        pids = _pids_of_uid(10031)
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        again = await http.request("PROPFIND", f"{router.url}/dav/home/", headers={"Depth": "0"})
        assert again.status_code == 207
        assert set(_pids_of_uid(10031)).isdisjoint(pids)


async def test_idle_server_is_stopped(router: Router) -> None:
    headers = _user(router, "lifecycle2", 10032)
    async with httpx.AsyncClient(trust_env=False, timeout=60, headers=headers) as http:
        response = await http.request("PROPFIND", f"{router.url}/dav/home/", headers=DEPTH_1)
        assert response.status_code == 207
        assert _pids_of_uid(10032)
        for _ in range(int(IDLE_TIMEOUT * 5)):
            await asyncio.sleep(0.5)
            if not _pids_of_uid(10032):
                break
        assert not _pids_of_uid(10032), "idle server still running"
        # The next request starts it again.
        again = await http.request("PROPFIND", f"{router.url}/dav/home/", headers=DEPTH_1)
        assert again.status_code == 207


async def test_router_restart_keeps_credentials(router: Router) -> None:
    web = await browser_login(router, "alice")
    try:
        cred = await create_credential(web, router, description="survives restarts")
    finally:
        await web.aclose()
    await asyncio.to_thread(router.restart)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        response = await http.request(
            "PROPFIND", f"{router.url}/dav/home/", auth=basic(cred), headers=DEPTH_1
        )
        assert response.status_code == 207
        health = await http.get(f"{router.url}/healthz")
        assert health.json()["status"] == "ok"
