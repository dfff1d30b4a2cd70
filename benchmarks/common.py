"""What every benchmark needs: ports, a supervised server process, curl, medians, memory.

Benchmarks compare against a baseline measured in the same run; :data:`NGINX_CONF` is that
baseline's server (static files with sendfile, WebDAV PUT under ``/upload/``, a JSON
autoindex under ``/many/``).
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/nginx-body;
    client_max_body_size 0;
    proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u;
    scgi_temp_path {tmp}/s;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /upload/ {{ dav_methods PUT; create_full_put_path on; }}
        location /many/ {{ autoindex on; autoindex_format json; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(
    argv: list[str], port: int, log: Path, **kw: object
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (output to ``log``) until the block ends; ready once ``port`` accepts."""
    with log.open("ab") as out:
        proc = subprocess.Popen(  # type: ignore[call-overload]
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[0]} exited early; see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{argv[0]} did not listen on {port}") from None
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def curl(*args: str, stdin: str | None = None) -> str:
    """curl's standard output; a failed transfer raises ``CalledProcessError``."""
    result = subprocess.run(
        ["curl", "-s", "-f", "--http1.1", "--noproxy", "*", *args],
        capture_output=True,
        text=True,
        check=True,
        input=stdin,
    )
    return result.stdout


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def _proc_field(path: str, field: str) -> float:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} line in {path}")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB."""
    return _proc_field(f"/proc/{pid}/status", "VmRSS:")


def pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` in MB (shared pages split between their users)."""
    return _proc_field(f"/proc/{pid}/smaps_rollup", "Pss:")
