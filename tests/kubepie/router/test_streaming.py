"""The proxy streams: router memory stays flat during a large upload and while a client reads
slowly; a client that goes away aborts the upstream exchange (no half upload is committed)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kubepie.router.conftest import (
    Router,
    accounted,
    basic,
    browser_login,
    create_credential,
)

MIB = 1024 * 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
async def bob_cred(router: Router) -> Any:
    web = await browser_login(router, "bob")
    try:
        return await create_credential(web, router)
    finally:
        await web.aclose()


async def test_upload_and_slow_download_keep_router_memory_flat(
    router: Router, bob_cred: Any
) -> None:
    assert router.proc is not None
    pid = router.proc.pid
    size = 256 * MIB
    block = os.urandom(MIB)
    peak = 0.0

    async def body() -> AsyncIterator[bytes]:
        nonlocal peak
        for i in range(size // MIB):
            if i % 16 == 0:
                peak = max(peak, rss_mb(pid))
            yield block

    async with httpx.AsyncClient(trust_env=False, timeout=120, auth=basic(bob_cred)) as http:
        await http.request("PROPFIND", f"{router.url}/dav/home/")  # server started, warm
        baseline = rss_mb(pid)
        put = await http.put(f"{router.url}/dav/home/big.bin", content=body())
        assert put.status_code in (201, 204), put.text
        assert (router.home("bob") / "big.bin").stat().st_size == size
        assert peak - baseline < 48, (baseline, peak)
        await accounted(router, lambda e: e["path"] == "/home/big.bin" and e["method"] == "PUT")
        metrics = (await http.get(f"{router.url}/metrics")).text
        uploaded = re.search(
            r'^kubepie_request_bytes_total\{direction="in",listener="dav"\} (\S+)$', metrics, re.M
        )
        assert uploaded is not None
        assert float(uploaded.group(1)) >= size

        async with http.stream("GET", f"{router.url}/dav/home/big.bin") as response:
            assert response.status_code == 200
            received = 0
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received >= 8 * MIB:
                    break
            await asyncio.sleep(1.5)  # a stalled reader: the router must not buffer the file
            assert rss_mb(pid) - baseline < 48


async def _raw(router: Router, cred: Any, head: str) -> tuple[asyncio.StreamReader, Any]:
    host, port = router.url.removeprefix("http://").split(":")
    token = base64.b64encode(f"{cred['access_key_id']}:{cred['secret_access_key']}".encode())
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        head.replace("\n", "\r\n").encode()
        + f"Host: {host}\r\nAuthorization: Basic {token.decode()}\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


async def test_client_disconnect_aborts_upload_and_download(router: Router, bob_cred: Any) -> None:
    reader, writer = await _raw(
        router, bob_cred, f"PUT /dav/home/partial.bin HTTP/1.1\nContent-Length: {64 * MIB}\n"
    )
    writer.write(os.urandom(8 * MIB))
    await writer.drain()
    writer.transport.abort()
    await asyncio.sleep(1.0)
    assert not (router.home("bob") / "partial.bin").exists()

    (router.home("bob") / "download.bin").write_bytes(os.urandom(64 * MIB))
    reader, writer = await _raw(router, bob_cred, "GET /dav/home/download.bin HTTP/1.1\n")
    await reader.readexactly(2 * MIB)
    writer.transport.abort()
    done = await accounted(router, lambda e: e["path"] == "/home/download.bin")
    assert done[-1]["bytes_out"] < 64 * MIB
    async with httpx.AsyncClient(trust_env=False, timeout=30, auth=basic(bob_cred)) as http:
        after = await http.get(
            f"{router.url}/dav/home/download.bin", headers={"Range": "bytes=0-9"}
        )
        assert after.status_code == 206


async def test_early_answer_to_a_large_upload(router: Router, bob_cred: Any) -> None:
    """The file server refuses an upload before its body is in (a read-only mount): the client
    gets that answer and the router keeps serving."""
    block = os.urandom(MIB)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(32):
            yield block

    async with httpx.AsyncClient(trust_env=False, timeout=60, auth=basic(bob_cred)) as http:
        refused = await http.put(f"{router.url}/dav/data/upload.bin", content=body())
        assert refused.status_code == 403
        assert not (router.area / "data" / "upload.bin").exists()
        after = await http.get(f"{router.url}/dav/data/readme.txt")
        assert after.status_code == 200
