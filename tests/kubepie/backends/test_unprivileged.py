"""Without root the backend serves only the invoking user, and says so.

The backend runs in a subprocess as dave (uid 10004, through ``setpriv``); see
:mod:`tests.kubepie.backends.unprivileged`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kubepie.backends.helpers import ALICE, DAVE, storage_area

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[3]


def test_unprivileged_backend_serves_only_its_own_user() -> None:
    with storage_area() as area:
        home = area / "home" / "dave"
        home.mkdir(mode=0o700)
        (home / "hello.txt").write_text("hello dave\n")
        for path in (home, home / "hello.txt"):
            os.chown(path, DAVE.uid, DAVE.gid)
        state = area / "state-dave"
        state.mkdir(mode=0o700)
        os.chown(state, DAVE.uid, DAVE.gid)
        result = subprocess.run(
            [
                "setpriv",
                f"--reuid={DAVE.uid}",
                f"--regid={DAVE.gid}",
                f"--groups={DAVE.gid}",
                sys.executable,
                "-m",
                "tests.kubepie.backends.unprivileged",
                str(state),
                str(area / "home" / "{username}"),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={"PATH": os.environ["PATH"], "HOME": str(state)},
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["own"] == {
        "status": 200,
        "text": "hello dave\n",
        "uid": "\t".join([str(DAVE.uid)] * 4),
    }
    assert report["other"]["status"] == 403
    assert f"uid {ALICE.uid} is refused" in report["other"]["message"]
    assert report["running"] == 1
    assert any(f"without root (uid {DAVE.uid})" in line for line in report["log"])
