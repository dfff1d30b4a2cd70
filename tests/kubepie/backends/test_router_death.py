"""A router killed without any shutdown leaves no file server behind.

The backend runs in a subprocess (:mod:`tests.kubepie.backends.holder`) that is killed with
SIGKILL: its helper sees the pipe close and stops every server; a server whose helper is
killed gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kubepie.backends.helpers import storage_area

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[3]


def dead(pid: int) -> bool:
    """True when ``pid`` is gone or only a zombie waiting for whoever adopted it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_killed_router_leaves_no_servers() -> None:
    with storage_area() as area:
        with subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.kubepie.backends.holder",
                str(area / "state"),
                str(area / "home" / "{username}"),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        ) as holder:
            try:
                assert holder.stdout is not None
                started = json.loads(holder.stdout.readline())
                pids = [started["helper"], *started["servers"]]
                assert len(pids) == 3
                assert not any(dead(pid) for pid in pids)
            finally:
                os.kill(holder.pid, signal.SIGKILL)
                holder.wait(10)
        deadline = time.monotonic() + 10
        while not all(dead(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in pids if not dead(pid)] == []
