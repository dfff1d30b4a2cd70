"""``kubepie demo`` without root: a single-user demo as the invoking account, said clearly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kubepie.demo.banner import PROMPT
from tests.support import ManagedProcess

pytestmark = pytest.mark.root

KUBEPIE = Path(sys.executable).with_name("kubepie")
NOBODY = 65534


def test_single_user_demo_serves_the_invoking_account() -> None:
    base = Path(tempfile.mkdtemp(prefix="kubepie-demo-nobody-", dir="/tmp"))
    os.chown(base, NOBODY, NOBODY)
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    argv = [*drop, "env", f"HOME={base}", str(KUBEPIE), "demo", "--dir", str(base / "demo")]
    argv += ["--port", "0", "--s3-port", "0", "--issuer-port", "0"]
    process = ManagedProcess("kubepie demo (nobody)", argv, base / "demo.log")
    try:
        with process:
            process.wait_until(
                lambda: "Press Ctrl-C to stop the demo." in process.log_tail(100_000),
                timeout=60,
                what="the banner",
            )
            banner = process.log_tail(100_000)
            assert "SINGLE-USER demo: not running as root, so only nobody (you)" in banner
            assert "alice    password" not in banner
            printed = [
                line[len(PROMPT) :] for line in banner.splitlines() if line.startswith(PROMPT)
            ]
            script = "\n".join(printed[:2])  # TOKEN=... and the whoami curl, as printed
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            who = json.loads(result.stdout)
            assert (who["username"], who["uid"], who["gids"]) == ("nobody", NOBODY, [NOBODY])
        home = base / "demo" / "storage" / "home" / "nobody"
        assert home.stat().st_uid == NOBODY
        assert not (base / "demo" / "storage" / "home" / "alice").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
