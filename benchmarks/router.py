"""Benchmark the router's data path: through ``kubepie serve`` vs. direct vs. nginx, one run.

Starts, over the same directory tree:

* nginx (sendfile, its DAV module for PUT) on a loopback port;
* ``kubepie fileserver --standalone`` as the benchmark user ("direct to the file server");
* ``kubepie serve`` with the local backend and a static directory of ``--users`` users,
  authenticated with app credentials (HTTP Basic) minted into its store beforehand.

and reports, with curl as the client (C, so the client is not the bottleneck), medians of
``--runs``:

* GET and PUT of one large file (``--size-mib``, default 1 GiB): router / direct / nginx, and
  the router's share of nginx;
* small GETs (4 KiB) per second over one keep-alive connection, router vs. direct, and the
  router's per-request overhead (p50 latency through it minus direct, Python client);
* first-request spawn latency: the first GET of users who have no server yet (p50, max);
* PSS of each user's idle server once ``--users`` users have one (mean, max);
* the router's RSS before and at its peak during the large GETs and PUTs (flat memory).

Targets (issue #4): GET through the router ≥ 50 % of nginx; spawn p50 ≤ 500 ms; per-user idle
PSS ≤ 40 MB; router overhead ≤ 3 ms p50. MB = 10^6 bytes. Run as root (the local backend
starts each user's server as that user). Usage:
``python -m benchmarks.router [--size-mib N] [--runs N] [--users N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from benchmarks.common import NGINX_CONF, curl, free_port, median_of, pss_mb, rss_mb, running
from kubepie.credentials.cipher import EncryptionKey, SecretCipher
from kubepie.credentials.models import Owner
from kubepie.credentials.sqlite import SqliteCredentialStore

FIRST_UID = 41001
ISSUER = "http://127.0.0.1:9"  # never contacted: the benchmark uses app credentials only


def pids_of_uid(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:") and int(line.split()[1]) == uid:
                found.append(int(entry.name))
    return found


def make_tree(home: Path, size_mib: int) -> None:
    block = os.urandom(1 << 20)
    with (home / "big.bin").open("wb") as out:
        for _ in range(size_mib):
            out.write(block)
    small = home / "small"
    small.mkdir()
    for i in range(1000):
        (small / f"s{i:04d}.bin").write_bytes(block[:4096])
    (home / "upload").mkdir()


def chown_tree(path: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, uid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid)


def get_put(base: str, auth: list[str], big: Path, runs: int) -> tuple[float, float]:
    def get() -> float:
        return float(curl(*auth, "-o", "/dev/null", "-w", "%{speed_download}", f"{base}/big.bin"))

    def put() -> float:
        target = f"{base}/upload/put-{secrets.token_hex(4)}.bin"
        return float(
            curl(*auth, "-T", str(big), "-o", "/dev/null", "-w", "%{speed_upload}", target)
        )

    return median_of(runs, get) / 1e6, median_of(runs, put) / 1e6


@contextmanager
def sampling_rss(pid: int, samples: list[float]) -> Iterator[None]:
    """Sample ``pid``'s RSS every 50 ms while the block runs."""
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mb(pid))
            time.sleep(0.05)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def small_gets_per_second(base: str, auth: list[str], count: int = 1000) -> float:
    config = "\n".join(
        f'url = "{base}/small/s{i:04d}.bin"\noutput = "/dev/null"' for i in range(count)
    )
    start = time.perf_counter()
    curl(*auth, "-K", "-", stdin=config)
    return count / (time.perf_counter() - start)


def latency_p50_ms(port: int, prefix: str, auth: str, count: int = 500) -> float:
    """p50 of sequential 4 KiB GETs over one keep-alive connection (Python http.client)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": auth}
    times = []
    for i in range(count):
        start = time.perf_counter()
        conn.request("GET", f"{prefix}/small/s{i % 1000:04d}.bin", headers=headers)
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        if response.status != 200:
            raise SystemExit(f"small GET answered {response.status}")
    conn.close()
    return statistics.median(times) * 1000


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


async def mint(state: Path, key_text: str, users: list[str]) -> list[tuple[str, str]]:
    cipher = SecretCipher([EncryptionKey.from_text(key_text)])
    async with await SqliteCredentialStore.open(state / "credentials.sqlite3", cipher) as store:
        out = []
        for name in users:
            made = await store.create(Owner(ISSUER, name, name), description="benchmark")
            out.append((made.access_key_id, made.secret_access_key))
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the local backend starts servers as other users")

    tmp = Path(tempfile.mkdtemp(prefix="kubepie-router-bench-", dir="/tmp"))
    os.chmod(tmp, 0o755)  # noqa: S103 (servers run as the benchmark users)
    try:
        return run(tmp, args.size_mib, args.runs, args.users)
    finally:
        if os.environ.get("KUBEPIE_BENCH_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, size_mib: int, runs: int, n_users: int) -> int:
    users = [f"bench{i}" for i in range(n_users)]
    homes = tmp / "home"
    for name in users:
        (homes / name).mkdir(parents=True)
    first = homes / users[0]
    print(f"preparing a {size_mib} MiB file and 1000 small files...", flush=True)
    make_tree(first, size_mib)
    for i, name in enumerate(users):
        chown_tree(homes / name, FIRST_UID + i)
        os.chmod(homes / name, 0o700)
    directory = {
        "users": {
            name: {"uid": FIRST_UID + i, "gid": FIRST_UID + i, "home": f"/home/{name}"}
            for i, name in enumerate(users)
        },
        "groups": {name: {"gid": FIRST_UID + i} for i, name in enumerate(users)},
    }
    (tmp / "users.yaml").write_text(yaml.safe_dump(directory))
    key_text = base64.b64encode(secrets.token_bytes(32)).decode()
    state = tmp / "state"
    state.mkdir(mode=0o700)
    creds = asyncio.run(mint(state, key_text, users))
    port, s3_port, direct_port, nginx_port = free_port(), free_port(), free_port(), free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "s3_listen": f"127.0.0.1:{s3_port}",
        "public_url": f"http://127.0.0.1:{port}",
        "oidc": {"issuer": ISSUER, "client_id": "bench"},
        "identity": {"source": "static", "static_file": str(tmp / "users.yaml")},
        "mounts": [{"name": "home", "path": f"{homes}/{{username}}"}],
        "backend": {"max_servers": n_users + 5},
        "state_dir": str(state),
        "accounting": {"log_file": str(tmp / "accounting.jsonl")},
    }
    (tmp / "kubepie.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "KUBEPIE_OIDC_CLIENT_SECRET": "unused-by-the-benchmark",
        "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": key_text,
    }
    (tmp / "nginx-body").mkdir()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=nginx_port, root=first))
    uid = FIRST_UID
    setpriv = [f"--reuid={uid}", f"--regid={uid}", f"--groups={uid}"]
    direct_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(first),
        "KUBEPIE_ACCESS_KEY": "direct",
        "KUBEPIE_SECRET_KEY": "direct-secret-91c",
    }
    py = sys.executable
    serve = [py, "-m", "kubepie.cli", "serve", "--config", str(tmp / "kubepie.yaml")]
    direct = [
        "setpriv",
        *setpriv,
        py,
        "-m",
        "kubepie.cli",
        "fileserver",
        "--standalone",
        f"--root=home={first}",
        f"--listen=127.0.0.1:{direct_port}",
        f"--state-dir={first}/.state",
    ]
    nginx = ["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")]
    key0, secret0 = creds[0]
    router_auth = ["-u", f"{key0}:{secret0}"]
    direct_auth = ["-u", "direct:direct-secret-91c"]
    big = first / "big.bin"
    results: dict[str, float] = {}
    with (
        running(nginx, nginx_port, tmp / "nginx.log"),
        running(direct, direct_port, tmp / "direct.log", env=direct_env),
        running(serve, port, tmp / "serve.log", env=env) as router_proc,
    ):
        router_base = f"http://127.0.0.1:{port}/dav/home"
        direct_base = f"http://127.0.0.1:{direct_port}/dav/home"
        nginx_base = f"http://127.0.0.1:{nginx_port}"
        # First request of user 0 (spawn), then spawn latency of users 1.. as first GETs.
        spawns = []
        for (key, secret), _name in zip(creds, users, strict=True):
            start = time.perf_counter()
            curl(
                "-u",
                f"{key}:{secret}",
                "-o",
                "/dev/null",
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 0",
                f"{router_base}/",
            )
            spawns.append(time.perf_counter() - start)
        time.sleep(1.0)
        pss: list[float] = []
        for i in range(n_users):
            pss.extend(pss_mb(pid) for pid in pids_of_uid(FIRST_UID + i))
        print(f"measuring GET/PUT of {size_mib} MiB, {runs} runs each...", flush=True)
        results["nginx_get"], results["nginx_put"] = get_put(nginx_base, [], big, runs)
        results["direct_get"], results["direct_put"] = get_put(direct_base, direct_auth, big, runs)
        idle_rss = rss_mb(router_proc.pid)
        samples: list[float] = []
        with sampling_rss(router_proc.pid, samples):
            results["router_get"], results["router_put"] = get_put(
                router_base, router_auth, big, runs
            )
        results["direct_small"] = median_of(
            runs, lambda: small_gets_per_second(direct_base, direct_auth)
        )
        results["router_small"] = median_of(
            runs, lambda: small_gets_per_second(router_base, router_auth)
        )
        direct_p50 = latency_p50_ms(direct_port, "/dav/home", basic("direct", "direct-secret-91c"))
        router_p50 = latency_p50_ms(port, "/dav/home", basic(key0, secret0))

    def row(name: str, value: float, unit: str, note: str = "") -> None:
        print(f"  {name:<44} {value:>10.1f} {unit:<6} {note}")

    print("\nLarge file (MB/s, median):")
    for what in ("get", "put"):
        nginx_v, direct_v, router_v = (
            results[f"{s}_{what}"] for s in ("nginx", "direct", "router")
        )
        row(f"{what.upper()} nginx", nginx_v, "MB/s")
        row(
            f"{what.upper()} direct to the file server",
            direct_v,
            "MB/s",
            f"{100 * direct_v / nginx_v:.0f}% of nginx",
        )
        target = " (target ≥ 50%)" if what == "get" else ""
        row(
            f"{what.upper()} through the router",
            router_v,
            "MB/s",
            f"{100 * router_v / nginx_v:.0f}% of nginx{target}, "
            f"{100 * router_v / direct_v:.0f}% of direct",
        )
    row("router RSS before", idle_rss, "MB")
    row("router RSS peak during GET/PUT", max(samples), "MB", "(flat: the body is streamed)")
    print("\nSmall files (4 KiB):")
    row("GETs/s direct", results["direct_small"], "/s")
    row(
        "GETs/s through the router",
        results["router_small"],
        "/s",
        f"{100 * results['router_small'] / results['direct_small']:.0f}% of direct",
    )
    row("p50 latency direct", direct_p50, "ms")
    row(
        "p50 latency through the router",
        router_p50,
        "ms",
        f"overhead {router_p50 - direct_p50:.2f} ms (target ≤ 3 ms)",
    )
    print(f"\nFirst request of {n_users} users (spawn + PROPFIND):")
    row("p50", statistics.median(spawns) * 1000, "ms", "(target ≤ 500 ms)")
    row("max", max(spawns) * 1000, "ms")
    print(f"\nIdle per-user servers ({len(pss)} processes of {n_users} users):")
    if pss:
        row("PSS mean", statistics.mean(pss), "MB", "(target ≤ 40 MB)")
        row("PSS max", max(pss), "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
