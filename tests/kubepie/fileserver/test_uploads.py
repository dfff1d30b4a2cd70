"""The shared atomic-upload path: BlockWriter's order, hashing, bound and errors; Upload's
commit and discard on a real directory (pure asyncio and files, no server)."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from kubepie.fileserver.uploads import BlockWriter, Buffer, Upload, is_upload_name

BLOCK = 64 << 10


def _pieces(total: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces = []
    left = total
    while left:
        size = min(left, rng.randint(1, 3 * BLOCK // 2))
        pieces.append(rng.randbytes(size))
        left -= size
    return pieces


async def test_blocks_arrive_in_order_hashed_and_within_the_bound() -> None:
    pieces = _pieces(40 * BLOCK + 123, seed=7)
    body = b"".join(pieces)
    written = bytearray()
    fed = 0
    high_water = 0
    lock = threading.Lock()

    def slow_sink(batch: Sequence[Buffer]) -> None:
        time.sleep(0.002)  # slower than the producer: the writer must hold it back
        with lock:
            for piece in batch:
                written.extend(piece)

    md5 = hashlib.md5(usedforsecurity=False)
    async with BlockWriter(slow_sink, [md5], block_size=BLOCK, depth=2) as writer:
        for piece in pieces:
            await writer.feed(piece)
            fed += len(piece)
            with lock:
                high_water = max(high_water, fed - len(written))
        total = await writer.finish()
    assert total == len(body)
    assert bytes(written) == body
    assert md5.hexdigest() == hashlib.md5(body, usedforsecurity=False).hexdigest()
    # At most ``depth`` blocks in flight plus the one being gathered (each may overshoot the
    # block size by less than one piece).
    assert high_water <= 3 * (BLOCK + 3 * BLOCK // 2), high_water
    assert high_water >= BLOCK  # the bound was reached, so the check above means something


async def test_a_body_of_one_block_is_written_whole() -> None:
    got: list[bytes] = []
    sha = hashlib.sha256()
    async with BlockWriter(lambda b: got.extend(bytes(p) for p in b), [sha], block_size=BLOCK) as w:
        await w.feed(b"abc")
        await w.feed(b"")
        await w.feed(b"def")
        assert await w.finish() == 6
    assert b"".join(got) == b"abcdef"
    assert sha.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


async def test_a_failed_write_surfaces_and_no_work_outlives_the_block() -> None:
    calls = 0
    running = threading.Event()

    def failing_sink(batch: Sequence[Buffer]) -> None:
        nonlocal calls
        calls += 1
        running.set()
        time.sleep(0.01)
        running.clear()
        if calls == 2:
            raise OSError(28, "No space left on device")

    async def upload() -> None:
        async with BlockWriter(failing_sink, block_size=BLOCK) as writer:
            for _ in range(20):
                await writer.feed(b"x" * BLOCK)
            await writer.finish()

    with pytest.raises(OSError, match="No space"):
        await upload()
    assert not running.is_set()
    assert calls < 20  # the producer stopped at the error instead of writing on


def _upload(target: Path, *, fsync: bool = False) -> Upload:
    directory = os.open(target.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        return Upload(directory, target.name, fsync=fsync)
    finally:
        os.close(directory)


def test_commit_replaces_and_keeps_mode_discard_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_bytes(b"old")
    target.chmod(0o640)
    upload = _upload(target)
    upload.write_all([b"ne", memoryview(b"w!")])
    seen_fd: list[int] = []
    st = upload.commit(seen_fd.append)
    assert seen_fd
    assert st.st_size == 4
    assert target.read_bytes() == b"new!"
    assert target.stat().st_mode & 0o777 == 0o640
    assert upload.retired is not None
    assert is_upload_name(upload.retired)
    upload.release_old()
    assert os.listdir(tmp_path) == ["file.txt"]

    cut = _upload(target)
    cut.write(b"partial")
    cut.discard()
    assert os.listdir(tmp_path) == ["file.txt"]
    assert target.read_bytes() == b"new!"


def test_commit_after_the_writer_closed_the_file(tmp_path: Path) -> None:
    upload = _upload(tmp_path / "closed.bin", fsync=True)
    upload.write(b"data")
    upload.close()  # what wsgidav does before end_write
    assert upload.commit().st_size == 4
    assert (tmp_path / "closed.bin").read_bytes() == b"data"


def test_a_failing_hook_leaves_the_old_version(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_bytes(b"old")
    upload = _upload(target)
    upload.write(b"new")

    def refuse(fd: int) -> None:
        raise ValueError("metadata too large")

    with pytest.raises(ValueError, match="too large"):
        upload.commit(refuse)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.txt"]
