"""Acceptance: ``kubepie demo`` as a real process; every printed command works as printed.

The demo runs once for the module (as root: alice, bob and carol with real permissions), on
free ports in a fresh directory. The tests read its banner, run each ``$ `` line with bash
exactly as printed (``TOKEN=...`` first), log in through the router's browser flow at the dev
issuer, check that alice cannot reach bob's private file, and finally stop it with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from kubepie.demo.banner import PROMPT
from tests.support import ManagedProcess

pytestmark = pytest.mark.root

KUBEPIE = Path(sys.executable).with_name("kubepie")


@dataclass
class RunningDemo:
    process: ManagedProcess
    base: Path
    banner: str

    def field(self, label: str) -> str:
        match = re.search(rf"^  {re.escape(label)}\s+(\S+)", self.banner, re.MULTILINE)
        assert match, f"no {label!r} in the banner"
        return match.group(1)

    def serve_log(self) -> str:
        path = self.base / "demo" / "serve.log"
        return path.read_text("utf-8", "replace")[-3000:] if path.exists() else ""

    @property
    def url(self) -> str:
        return self.field("Web UI, WebDAV, API").rstrip("/")

    @property
    def issuer(self) -> str:
        return self.field("Dev OIDC issuer")

    @property
    def commands(self) -> list[str]:
        return [line[len(PROMPT) :] for line in self.banner.splitlines() if line.startswith(PROMPT)]

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """``command`` in bash exactly as printed, after the printed ``TOKEN=`` line."""
        token_line = self.commands[0]
        assert token_line.startswith("TOKEN=")
        # The user's own environment (CA bundles and all), with a fresh home for rclone.
        env = {**os.environ, "HOME": str(self.base / "client-home")}
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f"{token_line}\n{command}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningDemo]:
    base = Path(tempfile.mkdtemp(prefix="kubepie-demo-", dir="/tmp"))
    os.chmod(base, 0o755)  # noqa: S103 (the demo users' servers must enter it)
    (base / "client-home").mkdir()
    argv = [str(KUBEPIE), "demo", "--dir", str(base / "demo")]
    argv += ["--port", "0", "--s3-port", "0", "--issuer-port", "0"]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = ManagedProcess("kubepie demo", argv, base / "demo.log", env=env)
    with process:
        process.wait_until(
            lambda: "Press Ctrl-C to stop the demo." in process.log_tail(100_000),
            timeout=60,
            what="the banner",
        )
        yield RunningDemo(process, base, process.log_tail(100_000))
    shutil.rmtree(base, ignore_errors=True)


def test_banner_names_the_dev_issuer_and_the_logins(demo: RunningDemo) -> None:
    assert "DEVELOPMENT ISSUER — NOT FOR PRODUCTION" in demo.banner
    assert "multi-user: running as root" in demo.banner
    for user in ("alice", "bob", "carol"):
        assert f"{user:<8} password {user}-demo" in demo.banner
    assert httpx.get(f"{demo.url}/healthz", trust_env=False).status_code == 200
    assert len(demo.commands) == 7


def test_printed_commands_work_as_printed(demo: RunningDemo) -> None:
    commands = demo.commands
    expected = [
        ('"username":"alice"', '"uid":10001'),  # curl whoami with the token
        ("# Shared demo data",),  # curl WebDAV GET with the token
        ("Notes of alice",),  # curl with the app credential (Basic)
        ("notes.txt", "analysis/"),  # rclone over WebDAV
        ("README.md", "scans/", "calibration.csv"),  # rclone over S3
        ("notes.txt", "# Shared demo data"),  # boto3
    ]
    assert len(commands) == len(expected) + 1
    for command, wanted in zip(commands[1:], expected, strict=True):
        result = demo.run(command)
        assert result.returncode == 0, (
            f"{command}\n{result.stdout}\n{result.stderr}\nrouter log:\n{demo.serve_log()}"
        )
        output = result.stdout.replace(" ", "")
        for text in wanted:
            assert text.replace(" ", "") in output, f"{command}\n{result.stdout}"


def test_whoami_shows_alices_posix_identity(demo: RunningDemo) -> None:
    result = demo.run(demo.commands[1])
    who = json.loads(result.stdout)
    assert who["username"] == "alice"
    assert who["uid"] == 10001
    assert sorted(who["gids"]) == [10001, 20001, 20002]


def _login(demo: RunningDemo, username: str) -> httpx.Client:
    """A client with a router session, logged in through the dev issuer's form."""
    client = httpx.Client(trust_env=False, timeout=30, follow_redirects=False)
    answer = client.get(f"{demo.url}/login")
    assert answer.status_code in (302, 303, 307), answer.text
    form_url = answer.headers["location"]
    assert form_url.startswith(f"{demo.issuer}/authorize?")
    page = client.get(form_url)
    assert "DEVELOPMENT ISSUER" in page.text
    fields = dict(re.findall(r'type=hidden name=(\w+) value="([^"]*)"', page.text))
    fields.update(username=username, password=f"{username}-demo")
    back = client.post(f"{demo.issuer}/authorize", data=fields)
    assert back.status_code == 303, back.text
    callback = back.headers["location"]
    assert urlsplit(callback).path == "/callback"
    done = client.get(callback)
    assert done.status_code in (302, 303, 307), done.text
    return client


def test_browser_login_at_the_dev_issuer(demo: RunningDemo) -> None:
    client = _login(demo, "carol")
    try:
        who = client.get(f"{demo.url}/api/v1/whoami").json()
        assert (who["username"], who["uid"]) == ("carol", 10003)
        # Logging out ends at the issuer's end_session_endpoint, with a way back.
        out = client.get(f"{demo.url}/logout")
        assert out.headers["location"].startswith(f"{demo.issuer}/logout?")
        page = client.get(out.headers["location"])
        assert "You are logged out" in page.text
        assert f'href="{demo.url}' in page.text
        assert client.get(f"{demo.url}/api/v1/whoami").status_code == 401
    finally:
        client.close()


def test_group_areas_follow_membership(demo: RunningDemo) -> None:
    def status(path: str) -> str:
        command = (
            'curl -sS -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TOKEN" '
            f"{demo.url}/dav/{path}"
        )
        return demo.run(command).stdout

    # alice is in physics and beamline-x: one mount per group.
    assert status("group-physics/shared-plan.md") == "200"
    assert status("group-beamline-x/shared-plan.md") == "200"
    carol = _login(demo, "carol")
    try:
        # The browser session opens the web UI's files, never /dav (user content there must
        # not act with a session).
        assert carol.get(f"{demo.url}/download/group-beamline-x/shared-plan.md").status_code == 200
        assert carol.get(f"{demo.url}/download/group-physics/shared-plan.md").status_code == 404
        assert carol.get(f"{demo.url}/dav/group-beamline-x/shared-plan.md").status_code == 401
    finally:
        carol.close()


def test_alice_cannot_see_bobs_private_file(demo: RunningDemo) -> None:
    bob = _login(demo, "bob")
    try:
        mine = bob.get(f"{demo.url}/download/home/private-notes.txt")
    finally:
        bob.close()
    assert mine.status_code == 200
    assert mine.text.startswith("Bob's private notes")
    private = demo.base / "demo" / "storage" / "home" / "bob" / "private-notes.txt"
    attempts = [
        f"{demo.url}/dav/home/private-notes.txt",
        f"{demo.url}/dav/home/../bob/private-notes.txt",
        f"{demo.url}/dav/home/%2e%2e/bob/private-notes.txt",
        f"{demo.url}/dav/data/../home/bob/private-notes.txt",
    ]
    for url in attempts:
        result = demo.run(
            'curl -sS -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TOKEN" '
            f"--path-as-is {url}"
        )
        assert result.stdout in {"400", "403", "404"}, (url, result.stdout)
    # And the kernel agrees: alice's own uid and groups cannot read it either.
    refused = subprocess.run(
        ["cat", str(private)],
        user=10001,
        group=10001,
        extra_groups=[10001, 20001, 20002],
        capture_output=True,
        check=False,
    )
    assert refused.returncode != 0


def test_ctrl_c_stops_everything(demo: RunningDemo) -> None:
    port = urlsplit(demo.url).port
    assert port is not None
    os.killpg(demo.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert demo.process.proc is not None
    assert demo.process.proc.wait(30) == 0
    assert "kubepie demo: stopping" in demo.process.log_tail()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the router still listens after Ctrl-C")


def test_a_restart_reuses_the_directory_and_revokes_the_old_credential(
    demo: RunningDemo,
) -> None:
    assert demo.process.proc is not None
    assert demo.process.proc.poll() is not None, "runs after test_ctrl_c_stops_everything"
    old_basic = demo.commands[3]  # curl -u <old key>:<old secret> .../notes.txt
    again = ManagedProcess(
        "kubepie demo (restart)", demo.process.argv, demo.base / "demo-2.log", env=demo.process.env
    )
    with again:
        again.wait_until(
            lambda: "Press Ctrl-C to stop the demo." in again.log_tail(100_000),
            timeout=60,
            what="the banner",
        )
        second = RunningDemo(again, demo.base, again.log_tail(100_000))
        new_basic = second.commands[3]
        assert new_basic != old_basic
        assert second.run(new_basic).stdout.startswith("Notes of alice")
        # Same key, new address: the old command now fails, since its credential is revoked.
        stale = old_basic.replace(demo.url, second.url)
        refused = second.run(stale)
        assert refused.returncode == 22, refused.stdout  # curl -f: HTTP error
        assert "401" in refused.stderr


def test_ctrl_c_during_startup_exits_cleanly(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="kubepie-demo-early-", dir="/tmp"))
    os.chmod(base, 0o755)  # noqa: S103 (the demo users' servers must enter it)
    argv = [str(KUBEPIE), "demo", "--dir", str(base / "demo")]
    argv += ["--port", "0", "--s3-port", "0", "--issuer-port", "0"]
    process = ManagedProcess("kubepie demo (early Ctrl-C)", argv, tmp_path / "demo.log")
    try:
        with process:
            process.wait_until(
                lambda: "starting kubepie serve" in process.log_tail(), timeout=30, what="start"
            )
            os.killpg(process.pid, signal.SIGINT)
            assert process.proc is not None
            assert process.proc.wait(30) == 0
            log = process.log_tail()
            assert "stopped before the router was up" in log or "stopping" in log
            assert "Traceback" not in log
    finally:
        shutil.rmtree(base, ignore_errors=True)
