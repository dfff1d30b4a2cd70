"""Sidecar and notebook-side commands as processes: walltime restarts, kubepie-token,
kubepie-arc, the startup wrapper; and the pure pieces they are built on."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from hubintegration.errors import SettingsError
from hubintegration.podspec import STARTUP_WRAPPER
from hubintegration.tokenhelper import AccessToken, jwt_expiry, write_atomically
from hubintegration.walltime import WalltimeConfig, countdown, server_path
from tests.support import ManagedProcess, free_port

BIN = Path(sys.executable).parent


def test_countdown_never_negative() -> None:
    assert countdown(100.0, 160.0, 120, 30) == {
        "total_s": 120,
        "remaining_s": 60,
        "elapsed_s": 60,
        "deadline": 160.0,
        "warning": False,
    }
    late = countdown(200.0, 160.0, 120, 30)
    assert (late["remaining_s"], late["elapsed_s"], late["warning"]) == (0, 120, True)


def test_server_paths() -> None:
    assert server_path("alice", "") == "/users/alice/server"
    assert server_path("a b", "x/y") == "/users/a%20b/servers/x%2Fy"


def test_walltime_config_names_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="KUBEPIE_WALLTIME_DEADLINE"):
        WalltimeConfig.from_env(
            {"KUBEPIE_HUB_API_URL": "http://h", "KUBEPIE_HUB_TOKEN": "t", "KUBEPIE_USER": "u"}
        )


def _walltime_env(port: int, deadline: float) -> dict[str, str]:
    return {
        **os.environ,
        "KUBEPIE_HUB_API_URL": "http://127.0.0.1:9/hub/api",
        "KUBEPIE_HUB_TOKEN": "unused",
        "KUBEPIE_USER": "alice",
        "KUBEPIE_WALLTIME_DEADLINE": f"{deadline:.3f}",
        "KUBEPIE_WALLTIME_TOTAL": "120",
        "KUBEPIE_WALLTIME_WARN_BEFORE": "10",
        "KUBEPIE_WALLTIME_PORT": str(port),
    }


def test_a_restarted_walltime_sidecar_keeps_the_deadline(tmp_path: Path) -> None:
    port = free_port()
    env = _walltime_env(port, time.time() + 100)
    seen = []
    for run in range(2):
        argv = [str(BIN / "kubepie-walltime")]
        with ManagedProcess(f"walltime-{run}", argv, tmp_path / f"{run}.log", env=env) as p:
            p.wait_for_port(port)
            seen.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json())
    assert seen[0]["deadline"] == seen[1]["deadline"]
    assert 95 <= seen[1]["remaining_s"] <= seen[0]["remaining_s"] <= 100
    assert seen[1]["elapsed_s"] >= 20
    assert "stops in" not in (tmp_path / "0.log").read_text()


def test_walltime_sidecar_without_settings_exits_with_the_reason() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEPIE_")}
    done = subprocess.run(
        [str(BIN / "kubepie-walltime")], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "KUBEPIE_HUB_API_URL is not set" in done.stderr


def _jwt(exp: float) -> str:
    return jwt.encode({"sub": "alice", "exp": int(exp)}, "k" * 32, algorithm="HS256")


def test_atomic_token_file(tmp_path: Path) -> None:
    path = tmp_path / "bt_u10001"
    write_atomically(path, "one")
    write_atomically(path, "two")
    assert path.read_text() == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["bt_u10001"]


def test_refresh_schedule_and_expiry() -> None:
    token = _jwt(time.time() + 300)
    assert jwt_expiry(token) == pytest.approx(time.time() + 300, abs=2)
    assert jwt_expiry("opaque-token") is None
    assert AccessToken("t", 1000.0, 700.0).refresh_at(60) == 940.0
    assert AccessToken("t", 1004.0, 1000.0).refresh_at(60) == 1003.0


def test_kubepie_token_and_arc_wrapper(tmp_path: Path) -> None:
    path = tmp_path / "bt_u10001"
    good = _jwt(time.time() + 300)
    path.write_text(good)
    env = {**os.environ, "BEARER_TOKEN_FILE": str(path)}
    env.pop("KUBEPIE_TOKEN_URL", None)
    printed = subprocess.run(
        [str(BIN / "kubepie-token")], env=env, capture_output=True, text=True, timeout=30
    )
    assert (printed.returncode, printed.stdout.strip()) == (0, good)
    arc = subprocess.run(
        [str(BIN / "kubepie-arc"), "sh", "-c", 'printf %s "$BEARER_TOKEN"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (arc.returncode, arc.stdout) == (0, good)
    path.write_text(_jwt(time.time() - 10))
    expired = subprocess.run(
        [str(BIN / "kubepie-token")], env=env, capture_output=True, text=True, timeout=30
    )
    assert expired.returncode == 1
    assert "no valid access token" in expired.stderr


def _wrapper_env(tmp_path: Path, files: dict[str, str], **extra: str) -> dict[str, str]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    script = tmp_path / "start.sh"
    script.write_text(STARTUP_WRAPPER)
    env = {"PATH": os.environ["PATH"], "KUBEPIE_CGROUP_ROOT": str(root), **extra}
    out = subprocess.run(
        ["/bin/sh", str(script), "env"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_startup_wrapper_cgroup_v2(tmp_path: Path) -> None:
    env = _wrapper_env(
        tmp_path,
        {"cpu.max": "150000 100000\n", "memory.max": "2147483648\n"},
        OMP_NUM_THREADS="1",
    )
    assert env["OMP_NUM_THREADS"] == "1"  # the user's own setting wins
    assert env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "2"
    assert env["KUBEPIE_MEM_LIMIT"] == env["MEM_LIMIT"] == "2147483648"


def test_startup_wrapper_cgroup_v1_and_unlimited(tmp_path: Path) -> None:
    env = _wrapper_env(
        tmp_path,
        {
            "cpu/cpu.cfs_quota_us": "400000\n",
            "cpu/cpu.cfs_period_us": "100000\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert env["OMP_NUM_THREADS"] == "4"
    assert "KUBEPIE_MEM_LIMIT" not in env
    unlimited = _wrapper_env(tmp_path / "u", {"cpu.max": "max 100000\n", "memory.max": "max\n"})
    assert "OMP_NUM_THREADS" not in unlimited
    assert "MEM_LIMIT" not in unlimited
