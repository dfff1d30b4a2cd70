"""Run the S3 app under uvicorn for the tests: one process, an HTTPS and a plain HTTP port.

``python -m tests.kubepie.s3.server ROOT HTTPS_PORT HTTP_PORT CERT KEY [SERVER_SECRET]``
serves the mounts ``home`` (ROOT/home) and ``data`` (ROOT/data, read-only) with the test key
pair, or behind a trusted front when SERVER_SECRET is given.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvicorn

from kubepie.fileserver.mounts import Mount, Mounts
from kubepie.s3.app import create_s3_app
from kubepie.s3.auth import (
    S3Authenticator,
    SigV4Authenticator,
    StaticKey,
    TrustedFrontAuthenticator,
)
from kubepie.s3.settings import S3Settings

ACCESS_KEY = "AKIAKUBEPIETEST"
SECRET_KEY = "test-secret/with+special=chars"


async def main(argv: list[str]) -> None:
    root, https_port, http_port, cert, key = (
        Path(argv[0]),
        int(argv[1]),
        int(argv[2]),
        argv[3],
        argv[4],
    )
    authenticator: S3Authenticator
    if len(argv) > 5:
        authenticator = TrustedFrontAuthenticator(argv[5])
    else:
        authenticator = SigV4Authenticator(StaticKey(ACCESS_KEY, SECRET_KEY))
    mounts = Mounts([Mount("home", root / "home"), Mount("data", root / "data", read_only=True)])
    app = create_s3_app(mounts, authenticator, S3Settings(owner="alice"))

    def config(port: int, tls: bool) -> uvicorn.Config:
        return uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=1,
            ssl_certfile=cert if tls else None,
            ssl_keyfile=key if tls else None,
        )

    servers = [uvicorn.Server(config(https_port, True)), uvicorn.Server(config(http_port, False))]

    async def run(server: uvicorn.Server) -> None:
        # Only one server receives the signal; when it stops, stop the other one too.
        await server.serve()
        for other in servers:
            other.should_exit = True

    await asyncio.gather(*(run(server) for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
