"""WebDAV locks survive a restart of the server (they live in the state directory)."""

from __future__ import annotations

from pathlib import Path

from tests.kubepie.fileserver.servers import ALICE, shared_area, start_standalone, user_dir

LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "<D:owner>test</D:owner></D:lockinfo>"
)


def test_lock_survives_restart() -> None:
    with shared_area() as area:
        home = user_dir(area / "home", ALICE)
        state = user_dir(area / "state", ALICE, 0o700)
        first = start_standalone(area, {"home": str(home)}, state_dir=state, name="locks-1")
        try:
            with first.client() as client:
                assert client.put("/dav/home/locked.txt", content=b"v1").status_code == 201
                lock = client.request(
                    "LOCK",
                    "/dav/home/locked.txt",
                    content=LOCK_BODY,
                    headers={"Timeout": "Second-600"},
                )
                assert lock.status_code == 200
                token = lock.headers["lock-token"].strip("<>")
        finally:
            first.stop()
        assert any(Path(state).iterdir())

        second = start_standalone(area, {"home": str(home)}, state_dir=state, name="locks-2")
        try:
            with second.client() as client:
                assert client.put("/dav/home/locked.txt", content=b"v2").status_code == 423
                found = client.request(
                    "PROPFIND",
                    "/dav/home/locked.txt",
                    headers={"Depth": "0"},
                    content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:">'
                    "<D:prop><D:lockdiscovery/></D:prop></D:propfind>",
                )
                assert token in found.text
                with_token = client.put(
                    "/dav/home/locked.txt", content=b"v3", headers={"If": f"(<{token}>)"}
                )
                assert with_token.status_code == 204
                unlock = client.request(
                    "UNLOCK", "/dav/home/locked.txt", headers={"Lock-Token": f"<{token}>"}
                )
                assert unlock.status_code == 204
            assert (home / "locked.txt").read_bytes() == b"v3"
        finally:
            second.stop()
