"""The router assembled in-process (``open_router``), as the web UI will plug into it."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from kubepie.backends.local import LocalBackend
from kubepie.router.app import open_router
from kubepie.router.context import RouterContext
from kubepie.settings.loader import load_config


async def test_web_routes_plug_in_ahead_of_the_built_in_ones(tmp_path: Path) -> None:
    config = tmp_path / "kubepie.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "public_url": "https://files.example.org",
                "oidc": {"issuer": "https://login.example.org", "client_id": "kubepie"},
                "mounts": [{"name": "home", "path": "/home/{username}"}],
                "state_dir": str(tmp_path / "state"),
                "accounting": {"log_file": str(tmp_path / "accounting.jsonl")},
            }
        )
    )
    env = {
        "KUBEPIE_OIDC_CLIENT_SECRET": "s",
        "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    settings = load_config(config, env)
    seen: list[RouterContext] = []

    async def home(request: Request) -> Response:
        return PlainTextResponse("the web UI")

    def ui(ctx: RouterContext) -> list[BaseRoute]:
        seen.append(ctx)
        return [Route("/", home)]

    registry = CollectorRegistry()
    backend = LocalBackend(settings.backend, settings.mount_specs, settings.state_dir)
    try:
        async with open_router(settings, backend, registry=registry, web_routes=ui) as apps:
            transport = httpx.ASGITransport(app=apps.main)
            async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
                assert (await http.get("/")).text == "the web UI"
                assert (await http.get("/healthz")).json()["servers_running"] == 0
                login = await http.get("/api/v1/whoami")
                assert login.status_code == 401
        assert seen == [apps.context]
    finally:
        await backend.aclose()
    assert "/api/v1/whoami" in (tmp_path / "accounting.jsonl").read_text()


def test_serve_names_the_bad_key_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "kubepie.yaml"
    config.write_text("public_url: https://files.example.org\nmounts: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "kubepie.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("KUBEPIE_")},
    )
    assert done.returncode == 2
    assert "oidc" in done.stderr
    assert "mounts" in done.stderr
