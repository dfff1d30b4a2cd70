"""The router process under abuse, seen from outside a real ``kubepie serve`` started as root:
bounded request heads and connections (431, 408, 503, idle close), identities with system
groups refused, a full server table that makes room from an idle server at once, and a router
that runs without root while its fork helper keeps it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.oidc import OidcProvider
from tests.kubepie.backends.helpers import proc_status
from tests.kubepie.router.conftest import CLAIMS_IDENTITY, Router, start_router

#: Small bounds, so that the test sees each of them act within a second or two.
LIMITS = {
    "max_head_size": 16384,
    "max_headers": 40,
    "head_timeout": 1,
    "body_timeout": 1,
    "idle_timeout": 1,
    "max_connections": 40,
}


@pytest.fixture(scope="module")
def ops(oidc_provider: OidcProvider, router_area: Path) -> Iterator[Router]:
    handle = start_router(
        oidc_provider,
        router_area,
        name="ops",
        identity=CLAIMS_IDENTITY,
        extra={"connections": LIMITS, "backend": {"idle_timeout": 60, "max_servers": 2}},
    )
    try:
        yield handle
    finally:
        handle.stop()


def _bearer(router: Router, name: str, uid: int, gids: list[int] | None = None) -> dict[str, str]:
    """A bearer token of a user known by its claims, with a home directory."""
    home = router.home(name)
    home.mkdir(exist_ok=True)
    os.chown(home, uid, uid)
    claims = router.provider.claims_for(
        name, preferred_username=name, uid=uid, gid=uid, gids=gids or [uid], groups=[]
    )
    return {"Authorization": f"Bearer {router.provider.mint(claims)}"}


def _address(router: Router) -> tuple[str, int]:
    host, port = router.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _rss_kib(pid: int) -> int:
    return int(proc_status(pid)["VmRSS"].split()[0])


def _answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """What the server sends until it closes (or ``timeout``), a reset counting as the end."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _send_all(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` in pieces, stopping where the server stops reading."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for start in range(0, len(data), 65536):
            sock.sendall(data[start : start + 65536])


async def _propfind(router: Router, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=30, headers=headers) as http:
        return await http.request("PROPFIND", f"{router.url}/dav/home/", headers={"Depth": "0"})


# -- 6: bounded heads, bodies and connections ----------------------------------------------------


def test_huge_header_lines_get_431_and_no_memory(ops: Router) -> None:
    assert ops.proc is not None
    before = _rss_kib(ops.proc.pid)
    for _ in range(4):
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
        with socket.create_connection(_address(ops), timeout=10) as sock:
            _send_all(sock, head)
            answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    grown = _rss_kib(ops.proc.pid) - before
    assert grown < 8 * 1024, f"the router grew by {grown} KiB for four refused heads"


def test_too_many_header_fields_get_431(ops: Router) -> None:
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(LIMITS["max_headers"] + 1))
    with socket.create_connection(_address(ops), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(_address(ops), timeout=10) as sock:  # just under: served
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")


def test_a_half_sent_head_gets_408(ops: Router) -> None:
    with socket.create_connection(_address(ops), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_a_stalled_body_gets_408(ops: Router) -> None:
    auth = _bearer(ops, "ops-body", 10041)["Authorization"].encode()
    with socket.create_connection(_address(ops), timeout=10) as sock:
        sock.sendall(
            b"PUT /dav/home/stalled.txt HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"x" * 10
        )
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert not (ops.home("ops-body") / "stalled.txt").exists()


def test_idle_connections_are_bounded_and_closed(ops: Router) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(300):
            held.append(socket.create_connection(_address(ops), timeout=10))
        time.sleep(0.5)
        accepted = []
        for sock in held:
            sock.setblocking(False)
            try:
                refused = sock.recv(4096)
            except BlockingIOError:
                accepted.append(sock)  # open and silent: the server holds it
                continue
            except ConnectionResetError:
                continue
            assert refused == b"" or refused.startswith(b"HTTP/1.1 503 "), refused[:200]
        assert 0 < len(accepted) <= LIMITS["max_connections"]
        # The idle ones are closed by the server after idle_timeout...
        for sock in accepted:
            sock.setblocking(True)
            assert _answer(sock, timeout=10) == b""
        # ...and a new client is served again.
        response = httpx.get(f"{ops.url}/healthz", timeout=10, trust_env=False)
        assert response.status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_the_s3_listener_is_bounded_too(ops: Router) -> None:
    host, port = ops.s3_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        _send_all(sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")


# -- 9: system groups ---------------------------------------------------------------------------


async def test_a_token_with_system_groups_is_refused(ops: Router) -> None:
    response = await _propfind(ops, _bearer(ops, "ops-disk", 10042, gids=[10042, 6, 42]))
    assert response.status_code == 403
    assert "below the minimum gid" in response.text
    fine = await _propfind(ops, _bearer(ops, "ops-disk", 10042))
    assert fine.status_code == 207


# -- 18: a full table ---------------------------------------------------------------------------


async def test_a_full_table_serves_a_newcomer_at_once_when_a_server_is_idle(ops: Router) -> None:
    users = [("ops-a", 10051), ("ops-b", 10052), ("ops-c", 10053)]
    for name, uid in users:  # max_servers is 2: the third needs an idle one's place
        response = await _propfind(ops, _bearer(ops, name, uid))
        assert response.status_code == 207, (name, response.status_code, response.text)
    # Two requests in flight at once still fit, one after another again.
    answers = await asyncio.gather(*(_propfind(ops, _bearer(ops, n, u)) for n, u in users[:2]))
    assert [a.status_code for a in answers] == [207, 207]


# -- 14 and 16: the router process itself -------------------------------------------------------


def _helper_of(pid: int) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = proc_status(int(entry.name))
            cmdline = (entry / "cmdline").read_bytes()
            if int(status["PPid"]) == pid and b"kubepie.backends.zygote" in cmdline:
                return int(entry.name)
    raise AssertionError("no backend helper under the router")


async def test_the_router_runs_without_root_and_its_helper_keeps_it(ops: Router) -> None:
    assert ops.proc is not None
    assert (await _propfind(ops, _bearer(ops, "ops-d", 10054))).status_code == 207
    status = proc_status(ops.proc.pid)
    uids, gids = status["Uid"].split(), status["Gid"].split()
    assert "0" not in uids, status["Uid"]
    assert len(set(uids)) == 1, status["Uid"]  # real, effective, saved and fs uid alike
    assert "0" not in gids, status["Gid"]
    assert len(set(gids)) == 1, status["Gid"]
    assert status["Groups"].split() in ([], [gids[0]])
    assert status["CapEff"] == status["CapPrm"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    helper = proc_status(_helper_of(ops.proc.pid))
    assert helper["Uid"].split() == ["0"] * 4
    # What the router keeps writing is the router account's, and private.
    state = ops.area / "state-ops"
    assert state.stat().st_uid == int(uids[0])
    assert stat.S_IMODE(ops.accounting.stat().st_mode) == 0o600
