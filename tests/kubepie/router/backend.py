"""A minimal backend for the router tests: one real ``kubepie fileserver`` process per user.

Real processes on real unix sockets (WebDAV and S3 listeners), started as root so that each
drops to its user's uid, gid and groups, like the local backend does. It adds what the local
backend does not offer yet, an S3 listener (``s3_address``), so S3 can be tested through the
router. Single-flight per uid; a dead server is restarted by the next ``ensure``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from identity.models import Identity
from identity.storage import MountSpec, resolve_mounts
from tests.support import ManagedProcess


@dataclass(frozen=True)
class TestUpstream:
    address: str
    secret: str = field(repr=False)
    s3_address: str


@dataclass
class _Entry:
    proc: ManagedProcess
    upstream: TestUpstream


def _connectable(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(path))
    except OSError:
        return False
    return True


class FileServerBackend:
    def __init__(self, area: Path, mounts: tuple[MountSpec, ...]) -> None:
        self.area = area
        self.mounts = mounts
        self.starts = 0
        self._servers: dict[int, _Entry] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def ensure(self, identity: Identity) -> TestUpstream:
        lock = self._locks.setdefault(identity.uid, asyncio.Lock())
        async with lock:
            entry = self._servers.get(identity.uid)
            if entry is not None and entry.proc.alive():
                return entry.upstream
            if entry is not None:
                entry.proc.stop()
            entry = await self._start(identity)
            self._servers[identity.uid] = entry
            return entry.upstream

    async def _start(self, identity: Identity) -> _Entry:
        self.starts += 1
        name = f"fs-{identity.username}-{self.starts}"
        run = self.area / "run"
        run.mkdir(mode=0o700, exist_ok=True)
        state = self.area / "state" / identity.username
        state.mkdir(parents=True, exist_ok=True)
        os.chown(state, identity.uid, identity.gid)
        secret = secrets.token_urlsafe(24)
        doc = {
            "identity": {
                "username": identity.username,
                "uid": identity.uid,
                "gid": identity.gid,
                "gids": list(identity.gids),
            },
            "mounts": [
                {"name": m.name, "path": m.path, "read_only": m.read_only}
                for m in resolve_mounts(self.mounts, identity)
            ],
            "secret": secret,
            "state_dir": str(state),
        }
        config = run / f"{name}.json"
        config.write_text(json.dumps(doc))
        config.chmod(0o600)
        dav, s3 = run / f"{name}.sock", run / f"{name}-s3.sock"
        argv = [
            sys.executable,
            "-m",
            "kubepie.cli",
            "fileserver",
            f"--listen=unix:{dav}",
            f"--s3-listen=unix:{s3}",
            f"--backend-config={config}",
        ]
        proc = ManagedProcess(
            name, argv, self.area / "logs" / f"{name}.log", env={"PATH": os.environ["PATH"]}
        ).start()
        for _ in range(400):
            if _connectable(dav) and _connectable(s3):
                break
            if not proc.alive():
                raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
            await asyncio.sleep(0.025)
        else:
            proc.stop()
            raise RuntimeError(f"{name} did not start:\n{proc.log_tail()}")
        return _Entry(proc, TestUpstream(f"unix:{dav}", secret, f"unix:{s3}"))

    async def touch(self, identity: Identity) -> None:
        return None

    async def report_failure(self, identity: Identity) -> None:
        entry = self._servers.pop(identity.uid, None)
        if entry is not None:
            entry.proc.stop()

    def running(self) -> int:
        return sum(1 for e in self._servers.values() if e.proc.alive())

    def pids(self) -> dict[str, int]:
        return {e.proc.name: e.proc.pid for e in self._servers.values() if e.proc.alive()}

    async def aclose(self) -> None:
        for entry in self._servers.values():
            entry.proc.stop()
        self._servers.clear()
