"""Start real ``kubepie fileserver`` processes for the tests, as real (numeric) users.

The test session runs as root (as CI does). Standalone servers are started through
``setpriv`` as the user they serve; backend servers are started as root and drop privileges
themselves. Everything they touch lives under a world-traversable directory in ``/tmp``
(pytest's own ``tmp_path`` is 0700 root, which a dropped process cannot enter).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import ManagedProcess, free_port, self_signed_certificate

ACCESS_KEY = "fs-access"
SECRET_KEY = "fs-secret-9d1c2e"
SERVER_SECRET = "per-server-secret-0f4e8a2b7c"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    gids: tuple[int, ...]


ALICE = User("alice", 10001, 10001, (10001, 20001, 20002))
BOB = User("bob", 10002, 10002, (10002, 20001))
CAROL = User("carol", 10003, 10003, (10003, 20002))
PHYSICS = 20001


def setpriv(user: User) -> list[str]:
    """argv prefix that runs a command as ``user`` (uid, gid and exactly its groups)."""
    return [
        "setpriv",
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--groups=" + ",".join(str(g) for g in user.gids),
    ]


def kubepie_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubepie.cli", "fileserver", *args]


@contextlib.contextmanager
def shared_area() -> Iterator[Path]:
    """A fresh directory under /tmp that every user may traverse (0755), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="kubepie-fs-", dir="/tmp"))
    os.chmod(path, 0o755)  # noqa: S103 (dropped test servers must enter it)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def user_dir(path: Path, user: User, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, user.uid, user.gid)
    os.chmod(path, mode)
    return path


def basic_header() -> dict[str, str]:
    token = base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Server:
    """A running file server and how to reach it."""

    proc: ManagedProcess
    base_url: str
    headers: dict[str, str]
    uds: str | None = None
    port: int = 0

    def client(self, **kwargs: object) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=self.uds) if self.uds else None
        return httpx.Client(
            base_url=self.base_url,
            headers=self.headers,
            transport=transport,
            timeout=30,
            **kwargs,  # type: ignore[arg-type]
        )

    def stop(self) -> None:
        self.proc.stop()


def start_standalone(
    area: Path,
    roots: Mapping[str, str],
    *,
    user: User = ALICE,
    state_dir: Path | None = None,
    name: str = "fileserver",
    port: int | None = None,
    extra: tuple[str, ...] = (),
) -> Server:
    """``kubepie fileserver --standalone`` as ``user``, ready on a loopback port."""
    port = port or free_port()
    state = state_dir or user_dir(area / f"state-{name}", user, 0o700)
    argv = [
        *setpriv(user),
        *kubepie_argv(
            "--standalone",
            *(f"--root={k}={v}" for k, v in roots.items()),
            f"--listen=127.0.0.1:{port}",
            f"--state-dir={state}",
            *extra,
        ),
    ]
    env = {
        "PATH": os.environ["PATH"],
        "KUBEPIE_ACCESS_KEY": ACCESS_KEY,
        "KUBEPIE_SECRET_KEY": SECRET_KEY,
        "HOME": str(area),
    }
    proc = ManagedProcess(name, argv, area / f"{name}.log", env=env, cwd=area).start()
    proc.wait_for_port(port)
    return Server(proc, f"http://127.0.0.1:{port}", basic_header(), port=port)


def start_backend(
    area: Path,
    user: User,
    mounts: list[dict[str, object]],
    *,
    name: str,
    secret: str = SERVER_SECRET,
    extra: tuple[str, ...] = (),
    document: Mapping[str, object] | None = None,
) -> Server:
    """``kubepie fileserver`` in backend mode, started as root, on a unix socket in ``area``;
    ``document`` adds keys to the parent's JSON (``memory_limit_mb`` ...)."""
    config = area / f"{name}.json"
    config.write_text(
        json.dumps(
            {
                "identity": {
                    "username": user.name,
                    "uid": user.uid,
                    "gid": user.gid,
                    "gids": list(user.gids),
                },
                "mounts": mounts,
                "secret": secret,
                "state_dir": str(user_dir(area / f"state-{name}", user, 0o700)),
                **(document or {}),
            }
        )
    )
    os.chmod(config, 0o600)
    sock = area / f"{name}.sock"
    argv = kubepie_argv(f"--listen=unix:{sock}", f"--backend-config={config}", *extra)
    env = {"PATH": os.environ["PATH"]}
    proc = ManagedProcess(name, argv, area / f"{name}.log", env=env, cwd=area).start()

    def answering() -> bool:
        if not sock.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(sock))
        return True

    proc.wait_until(answering, what=f"unix socket {sock}")
    return Server(proc, "http://fs", {"X-KubePie-Server-Secret": secret}, uds=str(sock))


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict of its ``Key: value`` lines."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def self_signed(directory: Path, owner: User) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, readable by ``owner``."""
    cert_path, key_path = self_signed_certificate(directory)
    for path in (cert_path, key_path):
        os.chown(path, owner.uid, owner.gid)
        os.chmod(path, 0o600)
    return cert_path, key_path
