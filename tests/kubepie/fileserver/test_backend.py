"""Backend mode, started as root: the server drops to the user, the kernel enforces the rest.

Uses the shared test population by number (no passwd entries needed): alice (10001; groups
physics 20001, beamline-x 20002), bob (10002; physics), carol (10003; beamline-x).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import kubepie
from kubepie.fileserver.server import fork_server
from kubepie.fileserver.settings import UnixAddress, backend_settings
from tests.kubepie.fileserver.servers import (
    ALICE,
    BOB,
    CAROL,
    PHYSICS,
    SERVER_SECRET,
    Server,
    kubepie_argv,
    proc_status,
    shared_area,
    start_backend,
    user_dir,
)
from tests.support import ManagedProcess

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        shared = path / "shared"
        shared.mkdir(mode=0o755)
        os.chmod(shared, 0o1777)  # noqa: S103 (a sticky shared area, like /tmp)
        private = shared / "bob-private.txt"
        private.write_text("bob only\n")
        os.chown(private, BOB.uid, BOB.gid)
        os.chmod(private, 0o600)
        group_file = shared / "physics.txt"
        group_file.write_text("physics group\n")
        os.chown(group_file, BOB.uid, PHYSICS)
        os.chmod(group_file, 0o640)
        open_dir = path / "open"
        open_dir.mkdir()
        os.chmod(open_dir, 0o777)  # noqa: S103 (writable by all, and not sticky)
        readonly_file = open_dir / "bob-readonly.txt"
        readonly_file.write_text("bob's words\n")
        os.chown(readonly_file, BOB.uid, BOB.gid)
        os.chmod(readonly_file, 0o644)
        home = user_dir(path / "alice-home", ALICE, 0o700)
        (home / "diary.txt").write_text("alice's\n")
        os.chown(home / "diary.txt", ALICE.uid, ALICE.gid)
        yield path


def _mounts(area: Path, home: bool) -> list[dict[str, object]]:
    mounts: list[dict[str, object]] = [
        {"name": "shared", "path": str(area / "shared")},
        {"name": "open", "path": str(area / "open")},
    ]
    if home:
        mounts.append({"name": "home", "path": str(area / "alice-home"), "read_only": False})
    return mounts


@pytest.fixture(scope="module")
def alice(area: Path) -> Iterator[Server]:
    srv = start_backend(area, ALICE, _mounts(area, home=True), name="backend-alice")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def carol(area: Path) -> Iterator[Server]:
    # carol is configured with alice's home too: only the kernel stands in the way.
    srv = start_backend(area, CAROL, _mounts(area, home=True), name="backend-carol")
    yield srv
    srv.stop()


def test_requests_without_or_with_a_wrong_secret_get_401(alice: Server) -> None:
    transport = httpx.HTTPTransport(uds=alice.uds)
    with httpx.Client(base_url=alice.base_url, transport=transport) as bare:
        assert bare.get("/dav/shared/physics.txt").status_code == 401
        wrong = {"X-KubePie-Server-Secret": SERVER_SECRET + "x"}
        assert bare.get("/dav/shared/physics.txt", headers=wrong).status_code == 401
        basic = {"Authorization": "Basic YWxpY2U6c2VjcmV0"}
        assert bare.get("/dav/shared/physics.txt", headers=basic).status_code == 401
    with alice.client() as client:
        assert client.get("/dav/shared/physics.txt").status_code == 200


def test_process_runs_with_exactly_the_users_ids(alice: Server) -> None:
    status = proc_status(alice.proc.pid)
    assert status["Uid"].split() == [str(ALICE.uid)] * 4
    assert status["Gid"].split() == [str(ALICE.gid)] * 4
    assert sorted(int(g) for g in status["Groups"].split()) == list(ALICE.gids)
    assert status["CapEff"] == "0000000000000000"
    assert status["CapPrm"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"


def test_unix_socket_is_private_to_the_parent(alice: Server) -> None:
    assert alice.uds is not None
    info = os.stat(alice.uds)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == 0


def test_secret_is_not_on_the_command_line(alice: Server) -> None:
    cmdline = Path(f"/proc/{alice.proc.pid}/cmdline").read_bytes()
    assert SERVER_SECRET.encode() not in cmdline


def test_another_users_private_file_is_refused(alice: Server, carol: Server) -> None:
    with alice.client() as client:
        assert client.get("/dav/shared/bob-private.txt").status_code == 403
        assert client.put("/dav/shared/bob-private.txt", content=b"x").status_code == 403
    with carol.client() as client:
        assert client.get("/dav/shared/bob-private.txt").status_code == 403
        assert client.get("/dav/home/diary.txt").status_code == 403
        assert client.request("PROPFIND", "/dav/home/", headers={"Depth": "1"}).status_code == 403


def test_group_readable_file_is_readable_by_members_only(alice: Server, carol: Server) -> None:
    with alice.client() as client:
        response = client.get("/dav/shared/physics.txt")
        assert response.status_code == 200
        assert response.text == "physics group\n"
    with carol.client() as client:
        assert client.get("/dav/shared/physics.txt").status_code == 403


def test_new_files_belong_to_the_user(alice: Server, area: Path) -> None:
    with alice.client() as client:
        assert client.put("/dav/home/new.txt", content=b"mine").status_code == 201
        assert client.get("/dav/home/diary.txt").text == "alice's\n"
    info = os.stat(area / "alice-home" / "new.txt")
    assert (info.st_uid, info.st_gid) == (ALICE.uid, ALICE.gid)


def test_backend_config_errors_name_the_key(area: Path) -> None:
    config = area / "bad.json"
    config.write_text('{"identity": {"uid": 0, "gid": 0}, "mounts": []}')
    result = subprocess.run(
        kubepie_argv(f"--listen=unix:{area}/bad.sock", f"--backend-config={config}"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "identity" in result.stderr
    assert "uid 0" in result.stderr


@pytest.mark.parametrize("extra", [{}, {"X-OC-Mtime": "1700000000"}], ids=["plain", "wsgidav"])
def test_put_cannot_replace_a_file_the_user_may_not_write(
    alice: Server, area: Path, extra: dict[str, str]
) -> None:
    """The directory lets alice rename over bob's file; a PUT still needs write permission."""
    with alice.client() as client:
        response = client.put(
            "/dav/open/bob-readonly.txt", content=b"alice was here", headers=extra
        )
    assert response.status_code == 403
    assert (area / "open" / "bob-readonly.txt").read_text() == "bob's words\n"
    assert os.stat(area / "open" / "bob-readonly.txt").st_uid == BOB.uid
    assert not [n for n in os.listdir(area / "open") if ".kubepie-upload-" in n]


def test_fork_server_from_a_root_parent_drops_in_the_child(area: Path) -> None:
    """The local backend's way: fork this (root, already imported) process, no exec."""
    sock = area / "forked.sock"
    state = user_dir(area / "state-forked", ALICE, 0o700)
    settings = backend_settings(
        {
            "identity": {
                "username": "alice",
                "uid": ALICE.uid,
                "gid": ALICE.gid,
                "gids": [20001, 20002],
            },
            "mounts": [{"name": "shared", "path": str(area / "shared")}],
            "secret": SERVER_SECRET,
            "state_dir": str(state),
        },
        listen=UnixAddress(sock),
        s3_listen=None,
    )
    pid = fork_server(settings)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        headers = {"X-KubePie-Server-Secret": SERVER_SECRET}
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), headers=headers) as client:
            response = _get_when_ready(client, "http://fs/dav/shared/physics.txt")
            assert response.status_code == 200
            assert client.get("http://fs/dav/shared/bob-private.txt").status_code == 403
        status = proc_status(pid)
        assert status["Uid"].split() == [str(ALICE.uid)] * 4
        assert os.stat(sock).st_uid == 0
    finally:
        os.kill(pid, signal.SIGTERM)
        _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0


def _get_when_ready(client: httpx.Client, url: str) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return client.get(url)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


#: Runs ``kubepie fileserver`` with an audit hook that reports every file opened from the
#: installation (the venv or the project) once the process no longer runs as root.
AUDITED = """
import os, sys
roots = tuple(sys.argv.pop(1).split(os.pathsep))
def hook(event, args):
    if event == "open" and os.geteuid() != 0 and isinstance(args[0], str):
        if args[0].startswith(roots):
            sys.stderr.write("LAZY-OPEN " + args[0] + "\\n")
sys.addaudithook(hook)
from kubepie.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_nothing_is_loaded_from_the_installation_after_the_drop(area: Path) -> None:
    """Where /root is 0700, a dropped server cannot read the interpreter's or the project's
    files: everything must be loaded before the drop."""
    project = Path(kubepie.__file__).resolve().parents[1]
    state = user_dir(area / "state-audited", ALICE, 0o700)
    config = area / "audited.json"
    config.write_text(
        json.dumps(
            {
                "identity": {"uid": ALICE.uid, "gid": ALICE.gid, "gids": list(ALICE.gids)},
                "mounts": [{"name": "home", "path": str(area / "alice-home")}],
                "secret": SERVER_SECRET,
                "state_dir": str(state),
            }
        )
    )
    dav_sock, s3_sock = area / "audited.sock", area / "audited-s3.sock"
    argv = [
        sys.executable,
        "-c",
        AUDITED,
        os.pathsep.join([sys.prefix, str(project)]),
        "fileserver",
        f"--listen=unix:{dav_sock}",
        f"--s3-listen=unix:{s3_sock}",
        f"--backend-config={config}",
    ]
    log = area / "audited.log"
    proc = ManagedProcess("audited", argv, log, env={"PATH": os.environ["PATH"]}, cwd=area)
    with proc:
        proc.wait_until(s3_sock.exists, what="sockets")
        headers = {"X-KubePie-Server-Secret": SERVER_SECRET}
        lock = (
            '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
        )
        dav = httpx.Client(transport=httpx.HTTPTransport(uds=str(dav_sock)), headers=headers)
        s3 = httpx.Client(transport=httpx.HTTPTransport(uds=str(s3_sock)), headers=headers)
        with dav, s3:
            assert _get_when_ready(dav, "http://fs/dav/home/").status_code == 200
            assert dav.put("http://fs/dav/home/a.txt", content=b"a").status_code == 201
            assert dav.get("http://fs/dav/home/a.txt").status_code == 200
            assert (
                dav.get("http://fs/dav/home/a.txt", headers={"Range": "bytes=0-0"}).status_code
                == 206
            )
            listing = dav.request("PROPFIND", "http://fs/dav/home/", headers={"Depth": "1"})
            assert listing.status_code == 207
            assert dav.request("LOCK", "http://fs/dav/home/a.txt", content=lock).status_code == 200
            assert dav.request("MKCOL", "http://fs/dav/home/sub").status_code == 201
            assert dav.get("http://fs/dav/nosuch/x").status_code == 404
            assert s3.get("http://fs/home/a.txt").status_code == 200
            assert s3.get("http://fs/home?list-type=2").status_code == 200
            assert s3.put("http://fs/home/b.txt", content=b"b").status_code == 200
    lazy = [line for line in log.read_text().splitlines() if line.startswith("LAZY-OPEN")]
    assert lazy == []
