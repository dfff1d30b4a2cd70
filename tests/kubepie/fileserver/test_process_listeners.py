"""One process serves WebDAV and S3 over the same mounts: standalone over HTTPS with SigV4 and
Basic, and behind the router (backend mode) with the per-server secret on both listeners.

The S3 API itself is tested in ``tests/kubepie/s3``; here only the wiring of the process.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from mypy_boto3_s3 import S3Client

from tests.kubepie.fileserver.servers import (
    ACCESS_KEY,
    ALICE,
    BOB,
    SECRET_KEY,
    SERVER_SECRET,
    Server,
    basic_header,
    self_signed,
    shared_area,
    start_backend,
    start_standalone,
    user_dir,
)
from tests.support import free_port


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        yield path


@pytest.fixture(scope="module")
def standalone(area: Path) -> Iterator[tuple[Server, int, Path]]:
    home = user_dir(area / "home", ALICE)
    data = user_dir(area / "data", ALICE)
    cert, key = self_signed(user_dir(area / "tls", ALICE, 0o700), ALICE)
    s3_port = free_port()
    srv = start_standalone(
        area,
        {"home": str(home), "data": f"{data}:ro"},
        name="both",
        extra=(f"--s3-listen=127.0.0.1:{s3_port}", f"--tls-cert={cert}", f"--tls-key={key}"),
    )
    srv.base_url = srv.base_url.replace("http://", "https://")
    yield srv, s3_port, cert
    srv.stop()


def _s3(port: int, cert: Path, secret: str = SECRET_KEY) -> S3Client:
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret, region_name="us-east-1"
    )
    return session.client(
        "s3",
        endpoint_url=f"https://127.0.0.1:{port}",
        verify=str(cert),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_s3_and_webdav_share_mounts_and_credentials(
    standalone: tuple[Server, int, Path], area: Path
) -> None:
    server, s3_port, cert = standalone
    s3 = _s3(s3_port, cert)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert names == {"home", "data"}
    s3.put_object(Bucket="home", Key="dir/from-s3.txt", Body=b"via s3")
    verify = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=server.base_url, headers=basic_header(), verify=verify) as dav:
        assert dav.get("/dav/home/dir/from-s3.txt").content == b"via s3"
        assert dav.put("/dav/home/dir/from-dav.txt", content=b"via dav").status_code == 201
        listing = dav.request("PROPFIND", "/dav/home/", headers={"Depth": "1"})
        assert ".kubepie-" not in listing.text
    got = s3.get_object(Bucket="home", Key="dir/from-dav.txt")
    assert got["Body"].read() == b"via dav"
    assert os.stat(area / "home" / "dir" / "from-s3.txt").st_uid == ALICE.uid


def test_s3_with_a_wrong_secret_is_refused(standalone: tuple[Server, int, Path]) -> None:
    _, s3_port, cert = standalone
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        _s3(s3_port, cert, secret="wrong").list_buckets()
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_rclone_copies_over_s3_and_check_matches(
    standalone: tuple[Server, int, Path], area: Path
) -> None:
    _, s3_port, cert = standalone
    source = area / "rclone-s3-src"
    for i in range(8):
        sub = source / f"d{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(2000 * (i + 1)))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(area),
        "RCLONE_CONFIG": str(area / "rclone-s3.conf"),
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Other",
        "RCLONE_CONFIG_S3_ENDPOINT": f"https://127.0.0.1:{s3_port}",
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "RCLONE_CONFIG_S3_FORCE_PATH_STYLE": "true",
        "RCLONE_CA_CERT": str(cert),
    }
    (area / "rclone-s3.conf").write_text("")
    copy = subprocess.run(
        ["rclone", "copy", str(source), "s3:home/rc"], env=env, capture_output=True, text=True
    )
    assert copy.returncode == 0, copy.stderr
    check = subprocess.run(
        ["rclone", "check", str(source), "s3:home/rc"], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert "0 differences found" in check.stderr


@pytest.mark.root
def test_backend_serves_s3_behind_the_router_with_the_secret(area: Path) -> None:
    home = user_dir(area / "backend-home", ALICE, 0o700)
    (home / "kept.txt").write_text("kept\n")
    os.chown(home / "kept.txt", ALICE.uid, ALICE.gid)
    shared = user_dir(area / "backend-shared", BOB, 0o755)
    (shared / "bob-only.txt").write_text("bob\n")
    os.chown(shared / "bob-only.txt", BOB.uid, BOB.gid)
    os.chmod(shared / "bob-only.txt", 0o600)
    os.symlink("/etc/shadow", home / "shadow")
    s3_sock = area / "backend-s3.sock"
    srv = start_backend(
        area,
        ALICE,
        [{"name": "home", "path": str(home)}, {"name": "shared", "path": str(shared)}],
        name="backend-both",
        extra=(f"--s3-listen=unix:{s3_sock}",),
    )
    try:
        transport = httpx.HTTPTransport(uds=str(s3_sock))
        with httpx.Client(base_url="http://fs", transport=transport) as s3:
            assert s3.get("/home/kept.txt").status_code == 403
            ok = s3.get("/home/kept.txt", headers={"X-KubePie-Server-Secret": SERVER_SECRET})
            assert ok.status_code == 200
            assert ok.text == "kept\n"
            refused = s3.get(
                "/shared/bob-only.txt", headers={"X-KubePie-Server-Secret": SERVER_SECRET}
            )
            assert refused.status_code == 403
            assert "<Code>AccessDenied</Code>" in refused.text
            shadow = s3.get("/home/shadow", headers={"X-KubePie-Server-Secret": SERVER_SECRET})
            assert shadow.status_code == 403
        with srv.client() as dav:
            assert dav.get("/dav/home/kept.txt").text == "kept\n"
            assert dav.get("/dav/shared/bob-only.txt").status_code == 403
            assert dav.get("/dav/home/shadow").status_code == 403
        assert oct(os.stat(s3_sock).st_mode & 0o777) == "0o600"
    finally:
        srv.stop()
