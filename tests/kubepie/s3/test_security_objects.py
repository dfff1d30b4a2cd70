"""S3 on a real backend server (alice, uid 10001): FIFOs, a hijacked multipart staging
directory in a shared group area, and create-only requests.

* A FIFO in the user's area is no object: GET, HEAD and CopyObject answer at once with an
  error instead of blocking a worker thread in ``open()``, listings leave it out, WebDAV GET
  too, and after many such requests the server still answers.
* Another member of a group area may create ``.kubepie-s3-uploads-<alice's uid>`` (or a
  symlink by that name) before alice does: alice's multipart uploads there are refused and
  nothing is written into bob's directory.
* With the router's create-only header an existing key is never replaced or deleted, and of
  racing creates of one key exactly one wins.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kubepie.fileserver.servers import (
    ALICE,
    BOB,
    PHYSICS,
    Server,
    shared_area,
    start_backend,
    user_dir,
)

pytestmark = pytest.mark.root

#: kubepie.fileserver.auth.CREATE_ONLY_HEADER, as the router sends it.
CREATE_ONLY = {"X-KubePie-Create-Only": "1"}
STAGING = f".kubepie-s3-uploads-{ALICE.uid}"
PROMPT = 10.0  # seconds: far more than any answer needs, far less than a blocked open()


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        home = user_dir(path / "home", ALICE)
        os.mkfifo(home / "pipe")
        os.chown(home / "pipe", ALICE.uid, ALICE.gid)
        (home / "plain.txt").write_bytes(b"plain\n")
        os.chown(home / "plain.txt", ALICE.uid, ALICE.gid)
        for name in ("physics", "physics2"):
            group = path / name
            group.mkdir()
            os.chown(group, 0, PHYSICS)
            os.chmod(group, 0o777)  # noqa: S103 (a shared group area, not sticky)
        user_dir(path / "bob-elsewhere", BOB, 0o777)
        yield path


@pytest.fixture(scope="module")
def served(area: Path) -> Iterator[tuple[Server, httpx.Client]]:
    mounts: list[dict[str, object]] = [
        {"name": "home", "path": str(area / "home")},
        {"name": "physics", "path": str(area / "physics")},
        {"name": "physics2", "path": str(area / "physics2")},
    ]
    s3_sock = area / "objects-s3.sock"
    extra = (f"--s3-listen=unix:{s3_sock}",)
    server = start_backend(area, ALICE, mounts, name="objects", extra=extra)
    server.proc.wait_until(s3_sock.exists, what="S3 socket")
    s3 = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(s3_sock)),
        base_url="http://fs",
        headers=server.headers,
        timeout=PROMPT,
    )
    yield server, s3
    s3.close()
    server.stop()


@pytest.fixture
def s3(served: tuple[Server, httpx.Client]) -> httpx.Client:
    return served[1]


def _code(response: httpx.Response) -> str:
    start = response.text.find("<Code>")
    return response.text[start + 6 : response.text.find("</Code>")] if start >= 0 else ""


def test_a_fifo_is_no_object_and_never_blocks(
    served: tuple[Server, httpx.Client], s3: httpx.Client
) -> None:
    for _ in range(10):
        got = s3.get("/home/pipe")
        assert got.status_code == 404
        assert _code(got) == "NoSuchKey"
    assert s3.head("/home/pipe").status_code == 404
    copied = s3.put("/home/copy-of-pipe", headers={"x-amz-copy-source": "/home/pipe"})
    assert copied.status_code == 404
    listing = s3.get("/home", params={"list-type": "2"})
    assert listing.status_code == 200
    assert "<Key>plain.txt</Key>" in listing.text
    assert "pipe" not in listing.text
    with served[0].client() as dav:
        for _ in range(10):
            assert dav.get("/dav/home/pipe").status_code in (403, 404)
        assert dav.get("/dav/home/pipe", headers={"Range": "bytes=0-"}).status_code in (403, 404)
        assert dav.get("/dav/home/plain.txt").content == b"plain\n"
    assert s3.get("/home/plain.txt").content == b"plain\n"  # every worker is still free


def _bobs(path: Path) -> None:
    os.lchown(path, BOB.uid, BOB.gid)


def test_a_staging_directory_made_by_another_user_is_refused(s3: httpx.Client, area: Path) -> None:
    hijacked = area / "physics" / STAGING
    hijacked.mkdir()
    _bobs(hijacked)
    os.chmod(hijacked, 0o777)  # noqa: S103 (bob invites alice's uploads in)
    refused = s3.post("/physics/big.bin?uploads")
    assert refused.status_code == 403
    assert _code(refused) == "AccessDenied"
    assert "staging" in refused.text
    assert os.listdir(hijacked) == []
    assert s3.get("/physics?uploads").status_code == 403

    # A symlink by that name, to a directory bob owns elsewhere, is refused too.
    link = area / "physics2" / STAGING
    link.symlink_to(area / "bob-elsewhere")
    _bobs(link)
    refused = s3.post("/physics2/big.bin?uploads")
    assert refused.status_code == 403
    assert os.listdir(area / "bob-elsewhere") == []


def test_create_only_never_replaces_or_deletes_a_key(s3: httpx.Client, area: Path) -> None:
    existing = area / "home" / "existing.txt"
    assert s3.put("/home/existing.txt", content=b"original").status_code == 200
    put = s3.put("/home/existing.txt", content=b"replaced", headers=CREATE_ONLY)
    assert put.status_code == 403
    assert _code(put) == "AccessDenied"
    copy = {**CREATE_ONLY, "x-amz-copy-source": "/home/plain.txt"}
    assert s3.put("/home/existing.txt", headers=copy).status_code == 403
    self_copy = {
        **CREATE_ONLY,
        "x-amz-copy-source": "/home/existing.txt",
        "x-amz-metadata-directive": "REPLACE",
    }
    assert s3.put("/home/existing.txt", headers=self_copy).status_code == 403
    assert s3.delete("/home/existing.txt", headers=CREATE_ONLY).status_code == 403
    delete_body = b"<Delete><Object><Key>existing.txt</Key></Object></Delete>"
    many = s3.post("/home?delete", content=delete_body, headers=CREATE_ONLY)
    assert "<Code>AccessDenied</Code>" in many.text
    started = s3.post("/home/existing.txt?uploads", headers=CREATE_ONLY)
    upload_id = started.text.split("<UploadId>")[1].split("</UploadId>")[0]
    part = s3.put(
        f"/home/existing.txt?partNumber=1&uploadId={upload_id}",
        content=b"part",
        headers=CREATE_ONLY,
    )
    assert part.status_code == 200
    complete = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{part.headers['etag']}</ETag></Part></CompleteMultipartUpload>"
    )
    done = s3.post(
        f"/home/existing.txt?uploadId={upload_id}", content=complete, headers=CREATE_ONLY
    )
    assert done.status_code == 403
    assert existing.read_bytes() == b"original"
    # New keys are what create-only allows.
    assert s3.put("/home/fresh.txt", content=b"new", headers=CREATE_ONLY).status_code == 200
    assert s3.put("/home/fresh-copy.txt", headers=copy).status_code == 200
    assert (area / "home" / "fresh-copy.txt").read_bytes() == b"plain\n"


def _create_concurrently(sock: Path, headers: dict[str, str], key: str, writers: int) -> list[int]:
    """PutObject ``key`` from ``writers`` threads released at once; their statuses."""
    statuses: list[int] = []
    start = threading.Barrier(writers)

    def create(n: int) -> None:
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(
            transport=transport, base_url="http://fs", headers=headers, timeout=PROMPT
        ) as client:
            start.wait()
            statuses.append(client.put(key, content=f"writer {n}".encode() * 1000).status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_racing_creates_of_a_key_have_exactly_one_winner(
    served: tuple[Server, httpx.Client], area: Path
) -> None:
    headers = {**served[0].headers, **CREATE_ONLY}
    for round_ in range(5):
        key = f"/home/race-{round_}.bin"
        statuses = _create_concurrently(area / "objects-s3.sock", headers, key, 8)
        assert sorted(statuses) == [200] + [403] * 7, statuses
        content = (area / "home" / f"race-{round_}.bin").read_bytes()
        assert content in {f"writer {n}".encode() * 1000 for n in range(8)}
