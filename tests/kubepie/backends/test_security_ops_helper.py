"""The fork helper is the privileged half of the router: it serves only well-formed spawn
requests within the policy on its command line, whatever the (possibly taken over) router
asks; and each user's server gets the configured memory ceiling."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from identity.models import Identity
from identity.storage import resolve_mounts
from kubepie.backends import policy
from kubepie.backends.errors import IdentityRefused
from kubepie.backends.local import LocalBackend
from kubepie.settings.models import BackendSettings
from tests.kubepie.backends.helpers import (
    ALICE,
    ISSUER,
    gone,
    home_mounts,
    proc_status,
    storage_area,
)


@pytest.fixture
def area() -> Iterator[Path]:
    with storage_area() as path:
        yield path


class Helper:
    """``python -m kubepie.backends.zygote`` as root, talked to over its pipes."""

    def __init__(self, area: Path) -> None:
        self.run_dir = area / "run"
        self.state_root = area / "fileserver"
        self.run_dir.mkdir(mode=0o700)
        rules = policy.HelperPolicy(self.run_dir, self.state_root, socket_owner=(4242, 4343))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubepie.backends.zygote", "--grace=1", *rules.to_args()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
        )
        assert self.read()["op"] == "ready"
        self.mounts = home_mounts(area)

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        message: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return message

    def send(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        return self.read()

    def spawn_request(self, identity: Identity, **changes: Any) -> dict[str, Any]:
        """A request as the backend sends it for ``identity``, with ``changes`` applied."""
        spec = policy.ServerSpec(
            identity.username,
            identity.uid,
            identity.gid,
            identity.gids,
            resolve_mounts(self.mounts, identity),
        )
        request: dict[str, Any] = {
            "op": "spawn",
            "id": 7,
            "document": policy.fileserver_document(spec, "s" * 43, None, 512),
            "listen": str(self.run_dir / f"u{identity.uid}-1.sock"),
            "s3_listen": None,
            "state_dir": str(self.state_root / str(identity.uid)),
            "drop": True,
        }
        request.update(changes)
        return request

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


@pytest.fixture
def helper(area: Path) -> Iterator[Helper]:
    started = Helper(area)
    try:
        yield started
    finally:
        started.close()


def _identity(uid: int, gid: int, gids: tuple[int, ...] = ()) -> Identity:
    return Identity(ISSUER, "sub", "mallory", uid, gid, gids)


def test_the_helper_refuses_requests_beyond_its_policy(helper: Helper) -> None:
    crafted = {
        "uid 0": helper.spawn_request(_identity(0, 10001)),
        "a system uid": helper.spawn_request(_identity(500, 10001)),
        "gid disk": helper.spawn_request(_identity(10001, 6)),
        "groups disk and shadow": helper.spawn_request(_identity(10001, 10001, (6, 42))),
        "no drop as root": helper.spawn_request(ALICE, drop=False),
        "a socket elsewhere": helper.spawn_request(ALICE, listen="/tmp/u10001-1.sock"),
        "another uid's socket": helper.spawn_request(
            ALICE, listen=str(helper.run_dir / "u10002-1.sock")
        ),
        "a state directory elsewhere": helper.spawn_request(ALICE, state_dir="/etc"),
        "an unknown key": helper.spawn_request(ALICE, exec="/bin/sh"),
        "a boolean for a number": helper.spawn_request(ALICE, id=True),
    }
    crafted["a uid that is not a number"] = helper.spawn_request(ALICE)
    crafted["a uid that is not a number"]["document"]["identity"]["uid"] = "10001"
    for what, request in crafted.items():
        reply = helper.send(request)
        assert reply["op"] == "failed", what
        assert reply["error"].startswith("refused: "), (what, reply)
    assert not list(helper.run_dir.iterdir())
    assert not helper.state_root.exists()
    # Garbage and stray signals are ignored; the helper still serves a proper request.
    assert helper.proc.stdin is not None
    helper.proc.stdin.write(
        b"[1, 2]\nnot json\n" + json.dumps({"op": "signal", "pid": 1, "signal": 9}).encode() + b"\n"
    )
    reply = helper.send(helper.spawn_request(ALICE))
    assert reply["op"] == "spawned", reply
    deadline = time.monotonic() + 10  # the child drops right after the fork
    while proc_status(reply["pid"])["Uid"].split()[0] == "0" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc_status(reply["pid"])["Uid"].split() == [str(ALICE.uid)] * 4
    socket_path = helper.run_dir / f"u{ALICE.uid}-1.sock"
    info = socket_path.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (4242, 4343, 0o600)
    state = (helper.state_root / str(ALICE.uid)).stat()
    assert (state.st_uid, state.st_mode & 0o777) == (ALICE.uid, 0o700)
    assert _data_limit(reply["pid"]) == 512 << 20


def _data_limit(pid: int) -> int | None:
    """The soft ``RLIMIT_DATA`` of ``pid`` in bytes (None: unlimited)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            soft = line.split()[3]
            return None if soft == "unlimited" else int(soft)
    raise AssertionError("no data size limit line")


async def test_the_backend_refuses_system_groups_and_caps_memory(area: Path) -> None:
    backend = LocalBackend(
        BackendSettings(idle_timeout=60, memory_limit_mb=300),
        home_mounts(area),
        area / "state",
        grace=1.0,
    )
    try:
        with pytest.raises(IdentityRefused, match="gid 42 is below min_gid 1000") as refused:
            await backend.ensure(Identity(ISSUER, "s", "alice", 10001, 10001, (42,)))
        assert refused.value.status == 403
        assert backend.running() == 0
        await backend.ensure(ALICE)
        (info,) = backend.servers()
        assert info.pid is not None
        assert _data_limit(info.pid) == 300 << 20
    finally:
        await backend.aclose()
    assert gone(info.pid)


def test_policy_check_spawn_is_strict_about_types() -> None:
    rules = policy.HelperPolicy(Path("/run/k"), Path("/state/k"), allowed_low_gids=frozenset({100}))
    good = {
        "op": "spawn",
        "id": 1,
        "document": {"identity": {"uid": 10001, "gid": 100, "gids": [100, 20001]}},
        "listen": "/run/k/u10001-3.sock",
        "s3_listen": "/run/k/u10001-3-s3.sock",
        "state_dir": "/state/k/10001",
        "drop": True,
    }
    accepted = policy.check_spawn(good, rules, root=True)
    assert (accepted.uid, accepted.gid, accepted.drop) == (10001, 100, True)
    for change in (
        {"drop": 1},
        {"s3_listen": "/run/k/u10001-3.sock"},
        {"listen": "/run/k/../k/u10001-3.sock"},
        {"document": {"identity": {"uid": 10001, "gid": 99}}},
    ):
        with pytest.raises(policy.SpawnRefused):
            policy.check_spawn({**good, **change}, rules, root=True)
