"""rclone (Debian 1.60) copies a tree in over S3 and ``rclone check`` finds it identical."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.kubepie.s3.conftest import ACCESS_KEY, SECRET_KEY, S3Server


def _rclone(s3_server: S3Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(
        RCLONE_CONFIG_KP_TYPE="s3",
        RCLONE_CONFIG_KP_PROVIDER="Other",
        RCLONE_CONFIG_KP_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_KP_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_KP_ENDPOINT=s3_server.http_url,
        RCLONE_CONFIG_KP_REGION="us-east-1",
        RCLONE_CONFIG_KP_FORCE_PATH_STYLE="true",
    )
    return subprocess.run(
        ["rclone", "--config", "/dev/null", "--low-level-retries", "1", "--retries", "1", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "deeper" / "c with space.txt").write_text("gamma\n")
    (root / "sub" / "big.bin").write_bytes(os.urandom(7 * 1024 * 1024))


def test_rclone_copy_and_check(s3_server: S3Server, tmp_path: Path) -> None:
    source = tmp_path / "tree"
    _make_tree(source)
    copied = _rclone(s3_server, "copy", str(source), "kp:home/rclone-tree")
    assert copied.returncode == 0, copied.stderr
    checked = _rclone(s3_server, "check", str(source), "kp:home/rclone-tree")
    assert checked.returncode == 0, checked.stderr
    assert "0 differences found" in checked.stderr
    assert (s3_server.home / "rclone-tree" / "sub" / "big.bin").read_bytes() == (
        source / "sub" / "big.bin"
    ).read_bytes()
    # A changed file is noticed by check (the ETag is a real MD5).
    (source / "a.txt").write_text("changed\n")
    assert _rclone(s3_server, "check", str(source), "kp:home/rclone-tree").returncode != 0


def test_rclone_multipart_upload_and_check(s3_server: S3Server, tmp_path: Path) -> None:
    source = tmp_path / "tree"
    _make_tree(source)
    flags = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
    copied = _rclone(s3_server, "copy", *flags, str(source), "kp:home/rclone-multi")
    assert copied.returncode == 0, copied.stderr
    checked = _rclone(s3_server, "check", str(source), "kp:home/rclone-multi")
    assert checked.returncode == 0, checked.stderr
    big = s3_server.home / "rclone-multi" / "sub" / "big.bin"
    assert big.read_bytes() == (source / "sub" / "big.bin").read_bytes()
    assert os.getxattr(big, "user.s3.meta.md5chksum")  # rclone's own MD5 for multipart objects
