"""A real uvicorn process serving the S3 app on loopback, over HTTPS (what boto3's defaults
need to send aws-chunked bodies with trailers) and plain HTTP, with a self-signed certificate
made here."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from mypy_boto3_s3 import S3Client

from tests.kubepie.s3.server import ACCESS_KEY, SECRET_KEY
from tests.support import ManagedProcess, free_port, self_signed_certificate

REPO = Path(__file__).resolve().parents[3]
__all__ = ["ACCESS_KEY", "SECRET_KEY", "S3Server", "start_s3"]


@dataclass(frozen=True)
class S3Server:
    https_url: str
    http_url: str
    cert: Path
    home: Path
    data: Path

    def tls(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def client(
        self, *, secret: str = SECRET_KEY, https: bool = True, signature_version: str | None = None
    ) -> S3Client:
        session = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret, region_name="us-east-1"
        )
        return session.client(
            "s3",
            endpoint_url=self.https_url if https else self.http_url,
            verify=str(self.cert),
            config=Config(
                s3={"addressing_style": "path"},
                signature_version=signature_version,
            ),
        )


def start_s3(root: Path, server_secret: str | None = None) -> tuple[S3Server, ManagedProcess]:
    """Start the test server process on ``root`` (SigV4, or a trusted front with a secret)."""
    home = root / "home"
    data = root / "data"
    home.mkdir()
    data.mkdir()
    (data / "readme.txt").write_text("read-only data\n")
    cert, key = self_signed_certificate(root)
    https_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "tests.kubepie.s3.server", str(root), str(https_port)]
    argv += [str(http_port), str(cert), str(key)]
    if server_secret is not None:
        argv.append(server_secret)
    process = ManagedProcess("s3-server", argv, root / "server.log", cwd=REPO)
    process.start()
    process.wait_for_port(https_port)
    process.wait_for_port(http_port)
    server = S3Server(
        https_url=f"https://127.0.0.1:{https_port}",
        http_url=f"http://127.0.0.1:{http_port}",
        cert=cert,
        home=home,
        data=data,
    )
    return server, process


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server, process = start_s3(tmp_path_factory.mktemp("s3"))
    yield server
    process.stop()


@pytest.fixture(scope="session")
def s3(s3_server: S3Server) -> Iterator[S3Client]:
    client = s3_server.client()
    yield client
    client.close()
