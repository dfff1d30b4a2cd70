"""Benchmark the local backend: first-request spawn latency and per-user idle memory (PSS).

Starts a :class:`kubepie.backends.local.LocalBackend` (root: every user's server drops to that
user) and asks it for ``--users`` servers, one new user after another, as bare numeric uids
with a home directory each. Reports:

* spawn latency (``ensure`` of a user with no server until it answered the readiness probe),
  p50 / p95 / max, with the fork helper already running (as after the router's start): one
  new user after another, then ``--users`` more users all at once (a burst);
* the PSS of each idle server right after start, and again after it served a PROPFIND and a
  GET (WebDAV loads more code on first use), plus the helper's own PSS.

Targets (issue #4): spawn p50 ≤ 500 ms, per-user idle PSS ≤ 40 MB. MB = 10^6 bytes.
Usage (as root): ``python -m benchmarks.backend [--users N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import pss_mb
from identity.models import Identity
from identity.storage import MountSpec
from kubepie.backends.local import LocalBackend
from kubepie.settings.models import BackendSettings

FIRST_UID = 40001


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def use(address: str, secret: str) -> None:
    transport = httpx.AsyncHTTPTransport(uds=address.removeprefix("unix:"))
    headers = {"X-KubePie-Server-Secret": secret}
    async with httpx.AsyncClient(
        base_url="http://fs", transport=transport, headers=headers
    ) as client:
        listing = await client.request("PROPFIND", "/dav/home/", headers={"Depth": "1"})
        assert listing.status_code == 207, listing.status_code
        assert (await client.get("/dav/home/hello.txt")).status_code == 200


def summary(name: str, values: list[float], unit: str) -> str:
    return (
        f"{name}: p50 {statistics.median(values):.1f} {unit}, mean {statistics.mean(values):.1f}, "
        f"p95 {percentile(values, 0.95):.1f}, max {max(values):.1f} (n={len(values)})"
    )


async def run(users: int, area: Path) -> None:
    people = [
        Identity("bench", f"u{uid}", f"u{uid}", uid, uid)
        for uid in range(FIRST_UID, FIRST_UID + 2 * users)
    ]
    for who in people:
        home = area / "home" / who.username
        home.mkdir(parents=True)
        (home / "hello.txt").write_text("hello\n")
        for path in (home, home / "hello.txt"):
            os.chown(path, who.uid, who.gid)
    backend = LocalBackend(
        BackendSettings(idle_timeout=3600, max_servers=2 * users),
        (MountSpec("home", str(area / "home" / "{username}")),),
        area / "state",
    )
    try:
        await backend.start()
        latencies, upstreams = [], []
        for who in people[:users]:
            began = time.perf_counter()
            upstreams.append(await backend.ensure(who))
            latencies.append((time.perf_counter() - began) * 1000)
        await asyncio.sleep(1.0)
        pids = [info.pid for info in backend.servers() if info.pid is not None]
        sequential = len(pids)
        fresh = [pss_mb(pid) for pid in pids]
        for upstream in upstreams:
            await use(upstream.address, upstream.secret)
        await asyncio.sleep(1.0)
        used = [pss_mb(pid) for pid in pids]
        helper = backend.helper_pid
        helper_pss = pss_mb(helper) if helper is not None else 0.0

        async def timed(who: Identity) -> float:
            began = time.perf_counter()
            await backend.ensure(who)
            return (time.perf_counter() - began) * 1000

        burst = await asyncio.gather(*(timed(who) for who in people[users:]))
        print(f"local backend, {sequential} users, as root, on {os.cpu_count()} CPUs")
        print(summary("spawn latency", latencies, "ms") + "   [target p50 <= 500 ms]")
        print(summary(f"spawn latency, {users} new users at once", list(burst), "ms"))
        print(summary("idle PSS after start", fresh, "MB"))
        print(summary("idle PSS after a PROPFIND and a GET", used, "MB") + "   [target <= 40 MB]")
        print(f"fork helper PSS: {helper_pss:.1f} MB (shared by all servers)")
    finally:
        await backend.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=50, help="servers to start (default 50)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the benchmark starts servers as other users", file=sys.stderr)
        return 2
    area = Path(tempfile.mkdtemp(prefix="kpbench-", dir="/tmp"))
    os.chmod(area, 0o755)  # noqa: S103 (the dropped servers must enter it)
    try:
        asyncio.run(run(args.users, area))
    finally:
        shutil.rmtree(area, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
