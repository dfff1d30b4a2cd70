"""Benchmark the file server's WebDAV/HTTPS data path against nginx on the same machine.

Starts nginx (temporary config, loopback port, sendfile, its DAV module for PUT) and
``kubepie fileserver --standalone`` over the same directory, then measures with curl (a C
client, so the client is not the bottleneck), median of ``--runs``:

* GET and PUT of one large file (``--size-mib``, default 1024 = 1 GiB);
* PROPFIND depth 1 over a 10,000-entry directory (nginx: its JSON autoindex of the same
  directory, the closest thing it has);
* the same over S3 (SigV4 signed by curl): GetObject, PutObject, a full ListObjectsV2 of the
  10,000 keys (10 pages), small GetObjects;
* small-file GETs per second (4 KiB files over one keep-alive connection);
* idle RSS of the file server, and its RSS sampled during a streaming GET (flat memory);
  the streamed size is ``--stream-mib`` (default: the large file; pass 4096 for 4 GiB).

Targets (issue #3): GET ≥ 75 % of nginx, PUT ≥ 400 MB/s, idle RSS ≤ 60 MB. MB = 10^6 bytes.
Run as root (CI) it serves as ``--user`` (default nobody) through ``setpriv``.
Usage: ``python -m benchmarks.fileserver [--size-mib N] [--stream-mib N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from benchmarks.common import NGINX_CONF, curl, free_port, median_of, rss_mb, running

ACCESS, SECRET = "bench", "bench-secret-3b7"


def make_tree(root: Path, size_mib: int, stream_mib: int) -> None:
    block = os.urandom(1 << 20)
    for name, mib in (("big.bin", size_mib), ("stream.bin", stream_mib)):
        if name == "stream.bin" and stream_mib == size_mib:
            os.link(root / "big.bin", root / "stream.bin")
            continue
        with (root / name).open("wb") as out:
            for _ in range(mib):
                out.write(block)
    many = root / "many"
    many.mkdir()
    for i in range(10_000):
        (many / f"entry-{i:05d}.txt").write_bytes(b"x")
    small = root / "small"
    small.mkdir()
    for i in range(1000):
        (small / f"s{i:04d}.bin").write_bytes(block[:4096])
    (root / "upload").mkdir()


def small_gets_per_second(base: str, auth: list[str], count: int = 1000) -> float:
    config = "\n".join(
        f'url = "{base}/small/s{i:04d}.bin"\noutput = "/dev/null"' for i in range(count)
    )
    start = time.perf_counter()
    subprocess.run(
        ["curl", "-s", "-f", "--http1.1", *auth, "-K", "-"],
        input=config,
        text=True,
        check=True,
    )
    return count / (time.perf_counter() - start)


def measure(
    base: str, auth: list[str], root: Path, runs: int, listing: Callable[[], float]
) -> dict[str, float]:
    """GET and PUT of the large file, one directory listing, small GETs per second."""
    big = root / "big.bin"
    out: dict[str, float] = {}

    def get() -> float:
        return float(curl(*auth, "-o", "/dev/null", "-w", "%{speed_download}", f"{base}/big.bin"))

    def put() -> float:
        # One name per server: nginx creates 0600 files that our user may not replace.
        target = f"{base}/upload/put-{zlib.crc32(base.encode()):08x}.bin"
        return float(
            curl(*auth, "-T", str(big), "-o", "/dev/null", "-w", "%{speed_upload}", target)
        )

    out["get"] = median_of(runs, get) / 1e6
    out["put"] = median_of(runs, put) / 1e6
    out["list_s"] = median_of(runs, listing)
    out["small_per_s"] = median_of(runs, lambda: small_gets_per_second(base, auth))
    return out


def timed(*args: str) -> Callable[[], float]:
    return lambda: float(curl(*args, "-o", "/dev/null", "-w", "%{time_total}"))


def s3_list_all(base: str, auth: list[str]) -> Callable[[], float]:
    """ListObjectsV2 of the whole 10,000-entry prefix, page after page (1000 keys each)."""

    def run() -> float:
        start = time.perf_counter()
        token = ""
        pages = 0
        while True:
            # Parameters in sorted order: curl signs the query string as given.
            first = f"continuation-token={quote(token, safe='')}&" if token else ""
            query = first + "list-type=2&prefix=many%2F"
            page = curl(*auth, f"{base}?{query}")
            pages += 1
            found = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", page)
            if not found:
                break
            token = found.group(1)
        if pages != 10:
            raise SystemExit(f"expected 10 pages of 1000 keys, got {pages}")
        return time.perf_counter() - start

    return run


def stream_rss(base: str, auth: list[str], pid: int) -> tuple[float, float, float]:
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mb(pid))
            time.sleep(0.05)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        speed = float(
            curl(*auth, "-o", "/dev/null", "-w", "%{speed_download}", f"{base}/stream.bin")
        )
    finally:
        done.set()
        thread.join()
    return min(samples), max(samples), speed / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="large file for GET/PUT")
    parser.add_argument("--stream-mib", type=int, default=0, help="file streamed for RSS (0: same)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--settle", type=float, default=35, help="idle seconds before the after-run RSS sample"
    )
    parser.add_argument("--user", default="nobody", help="run the file server as (when root)")
    args = parser.parse_args()
    stream_mib = args.stream_mib or args.size_mib

    tmp = Path(tempfile.mkdtemp(prefix="kubepie-bench-", dir="/tmp"))
    os.chmod(tmp, 0o755)  # noqa: S103 (the file server runs as another user)
    try:
        root = tmp / "root"
        root.mkdir()
        print(f"preparing {args.size_mib} MiB file, 10,000-entry dir, 1000 small files...")
        make_tree(root, args.size_mib, stream_mib)
        uid = gid = os.getuid()
        prefix: list[str] = []
        if os.geteuid() == 0:
            uid = int(
                subprocess.run(
                    ["id", "-u", args.user], capture_output=True, text=True, check=True
                ).stdout
            )
            gid = int(
                subprocess.run(
                    ["id", "-g", args.user], capture_output=True, text=True, check=True
                ).stdout
            )
            prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        for path in [tmp, root, *root.rglob("*")]:
            os.chown(path, uid, gid)

        nginx_port, dav_port, s3_port = free_port(), free_port(), free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=nginx_port, root=root))
        nginx_argv = ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]
        with running(nginx_argv, nginx_port, tmp / "nginx.log"):
            ngx_base = f"http://127.0.0.1:{nginx_port}"
            ngx = measure(ngx_base, [], root, args.runs, timed(f"{ngx_base}/many/"))

        state = tmp / "state"
        state.mkdir()
        os.chown(state, uid, gid)
        dav_argv = [
            *prefix,
            sys.executable,
            "-m",
            "kubepie.cli",
            "fileserver",
            "--standalone",
            f"--root=bench={root}",
            f"--listen=127.0.0.1:{dav_port}",
            f"--state-dir={state}",
            f"--s3-listen=127.0.0.1:{s3_port}",
        ]
        os.environ.update({"KUBEPIE_ACCESS_KEY": ACCESS, "KUBEPIE_SECRET_KEY": SECRET})
        auth = ["-u", f"{ACCESS}:{SECRET}"]
        base = f"http://127.0.0.1:{dav_port}/dav/bench"
        with running(dav_argv, dav_port, tmp / "fileserver.log") as proc:
            time.sleep(1.0)
            idle = rss_mb(proc.pid)
            propfind = timed(*auth, "-X", "PROPFIND", "-H", "Depth: 1", f"{base}/many/")
            ours = measure(base, auth, root, args.runs, propfind)
            s3_base = f"http://127.0.0.1:{s3_port}/bench"
            s3_auth = [
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "-u",
                f"{ACCESS}:{SECRET}",
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            ]
            s3 = measure(s3_base, s3_auth, root, args.runs, s3_list_all(s3_base, s3_auth))
            low, high, stream_speed = stream_rss(base, auth, proc.pid)
            time.sleep(args.settle)  # the server gives memory back every 30 s when idle
            idle_after = rss_mb(proc.pid)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def row(name: str, mine: float, theirs: float, unit: str, higher_better: bool = True) -> None:
        ratio = mine / theirs if higher_better else theirs / mine
        print(f"{name:<34} {mine:>10.1f} {theirs:>10.1f} {unit:<6} {ratio:>6.0%}")

    def header(title: str) -> None:
        print(f"\n{title:<34} {'kubepie':>10} {'nginx':>10} {'unit':<6} {'ratio':>6}")

    header(f"WebDAV/HTTPS (median of {args.runs})")
    row(f"GET {args.size_mib} MiB", ours["get"], ngx["get"], "MB/s")
    row(f"PUT {args.size_mib} MiB", ours["put"], ngx["put"], "MB/s")
    row("PROPFIND depth 1, 10,000 entries", ours["list_s"], ngx["list_s"], "s", higher_better=False)
    row("small (4 KiB) GETs", ours["small_per_s"], ngx["small_per_s"], "req/s")
    header("S3, SigV4 (curl --aws-sigv4)")
    row(f"GetObject {args.size_mib} MiB", s3["get"], ngx["get"], "MB/s")
    row(f"PutObject {args.size_mib} MiB", s3["put"], ngx["put"], "MB/s")
    row("ListObjectsV2, 10,000 keys", s3["list_s"], ngx["list_s"], "s", higher_better=False)
    row("small (4 KiB) GetObjects", s3["small_per_s"], ngx["small_per_s"], "req/s")
    print(
        f"\nidle RSS {idle:.1f} MB at start, {idle_after:.1f} MB after the run and "
        f"{args.settle:.0f} s idle (target <= 60)"
    )
    print(
        f"RSS while streaming {stream_mib} MiB at {stream_speed:.0f} MB/s: "
        f"{low:.1f}..{high:.1f} MB (flat if the spread is small)"
    )
    verdicts = {
        "GET >= 75% of nginx": ours["get"] >= 0.75 * ngx["get"],
        "PUT >= 400 MB/s": ours["put"] >= 400,
        "S3 GET >= 75% of nginx": s3["get"] >= 0.75 * ngx["get"],
        "S3 PUT >= 400 MB/s": s3["put"] >= 400,
        "idle RSS <= 60 MB": max(idle, idle_after) <= 60,
    }
    print("targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in verdicts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
