"""The file server's memory ceiling and its headers, on real processes: a standalone server
(as alice) and a backend-mode server (started as root, dropping to alice) read back through
``/proc/<pid>/limits``; behind the router the file server sends no ``Date`` of its own."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepie.fileserver.launch import read_backend_settings
from kubepie.fileserver.settings import SettingsError
from tests.kubepie.fileserver.servers import (
    ALICE,
    kubepie_argv,
    setpriv,
    shared_area,
    start_backend,
    start_standalone,
    user_dir,
)

MIB = 1 << 20


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        yield path


def data_limit(pid: int) -> tuple[str, str]:
    """Soft and hard ``Max data size`` of a running process, in bytes (as the kernel says)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            soft, hard = line[len("Max data size") :].split()[:2]
            return soft, hard
    raise AssertionError("no 'Max data size' line")


def test_standalone_server_runs_under_its_memory_limit(area: Path) -> None:
    home = user_dir(area / "home-standalone", ALICE)
    server = start_standalone(
        area, {"home": str(home)}, name="limited", extra=("--memory-limit-mb=640",)
    )
    try:
        assert data_limit(server.proc.pid) == (str(640 * MIB), str(640 * MIB))
        with server.client() as client:
            body = b"m" * (3 * MIB)
            assert client.put("/dav/home/three-mib", content=body).status_code == 201
            assert client.get("/dav/home/three-mib").content == body
            listing = client.request("PROPFIND", "/dav/home/", headers={"Depth": "1"})
            assert listing.status_code == 207
    finally:
        server.stop()


def test_backend_server_takes_the_limit_from_the_parents_document(area: Path) -> None:
    home = user_dir(area / "home-backend", ALICE)
    server = start_backend(
        area,
        ALICE,
        [{"name": "home", "path": str(home)}],
        name="backend-limited",
        document={"memory_limit_mb": 700},
    )
    try:
        # Started as root and dropped: the hard limit binds the user's process too.
        assert data_limit(server.proc.pid) == (str(700 * MIB), str(700 * MIB))
        with server.client() as client:
            response = client.put("/dav/home/ok.txt", content=b"ok")
            assert response.status_code == 201
            # Behind the router: its server adds the one Date; the file server adds none.
            for answer in (response, client.get("/dav/home/ok.txt"), client.get("/dav/home/no")):
                assert "date" not in answer.headers, answer.headers
                assert "server" not in answer.headers, answer.headers
    finally:
        server.stop()


def test_the_lower_of_command_line_and_document_applies() -> None:
    doc = {
        "identity": {"username": "alice", "uid": ALICE.uid, "gid": ALICE.gid, "gids": []},
        "mounts": [{"name": "home", "path": "/tmp"}],
        "secret": "s" * 32,
        "memory_limit_mb": 900,
    }

    def read(cli: str | None, document: dict[str, object]) -> int | None:
        return read_backend_settings(
            io.StringIO(json.dumps(document)),
            listen="127.0.0.1:1",
            s3_listen=None,
            state_dir=None,
            environ={},
            memory_limit_mb=cli,
        ).memory_limit_mb

    assert read(None, doc) == 900
    assert read("600", doc) == 600
    assert read("2000", doc) == 900
    with pytest.raises(SettingsError, match="memory_limit_mb"):
        read(None, {**doc, "memory_limit_mb": "lots"})
    with pytest.raises(SettingsError, match="--memory-limit-mb"):
        read("-5", doc)


def test_a_limit_too_small_to_serve_is_refused_at_start(area: Path) -> None:
    home = user_dir(area / "home-tiny", ALICE)
    result = subprocess.run(
        [
            *setpriv(ALICE),
            *kubepie_argv(
                "--standalone", f"--root=home={home}", "--listen=127.0.0.1:1", "--memory-limit-mb=8"
            ),
        ],
        env={"PATH": "/usr/bin:/bin", "KUBEPIE_ACCESS_KEY": "a", "KUBEPIE_SECRET_KEY": "b"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "memory_limit_mb" in result.stderr
