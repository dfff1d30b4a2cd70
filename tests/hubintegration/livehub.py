"""A real JupyterHub (with configurable-http-proxy) on loopback for the live tests.

The Hub logs users in with GenericOAuthenticator at the test oidc-provider (auth_state on),
installs the KubePie hooks with ``install(c, custom)`` exactly as the chart's extraConfig
does, and spawns "pods" with :class:`tests.hubintegration.localpod.LocalPodSpawner`.
A service ``test-admin`` holds an admin token for the REST API.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.oidc import OidcClient, OidcProvider, drive_login
from tests.support import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"

CONFIG = """
import json
from hubintegration.hooks import install

settings = json.loads({settings!r})
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.command = [settings["chp"]]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % settings["proxy_api_port"]
c.ConfigurableHTTPProxy.auth_token = settings["proxy_token"]
c.JupyterHub.db_url = "sqlite:///" + settings["workdir"] + "/hub.sqlite"
c.JupyterHub.cookie_secret = bytes.fromhex(settings["cookie_secret"])
c.JupyterHub.pid_file = settings["workdir"] + "/hub.pid"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "generic-oauth"
c.Authenticator.allow_all = True
c.Authenticator.manage_groups = True
c.Authenticator.auth_state_groups_key = "oauth_user.groups"
c.GenericOAuthenticator.client_id = settings["client_id"]
c.GenericOAuthenticator.client_secret = settings["client_secret"]
c.GenericOAuthenticator.authorize_url = settings["issuer"] + "/auth"
c.GenericOAuthenticator.token_url = settings["issuer"] + "/token"
c.GenericOAuthenticator.oauth_callback_url = settings["callback"]
c.GenericOAuthenticator.userdata_from_id_token = True
c.GenericOAuthenticator.username_claim = "preferred_username"
c.GenericOAuthenticator.scope = ["openid", "profile", "groups", "offline_access"]
c.GenericOAuthenticator.extra_authorize_params = {{"prompt": "consent"}}
c.GenericOAuthenticator.enable_pkce = True
c.JupyterHub.services = [{{"name": "test-admin", "api_token": settings["admin_token"]}}]
c.JupyterHub.load_roles = settings["roles"] + [
    {{
        "name": "test-admin",
        "scopes": ["admin:users", "admin:servers", "admin:auth_state", "list:users",
                   "read:users", "read:servers"],
        "services": ["test-admin"],
    }}
]
hooks = install(c, settings["custom"])
c.JupyterHub.spawner_class = "tests.hubintegration.localpod.LocalPodSpawner"
c.LocalPodSpawner.kubepie = hooks
c.LocalPodSpawner.workdir = settings["workdir"]
c.LocalPodSpawner.token_endpoint = settings["issuer"] + "/token"
c.LocalPodSpawner.client_id = settings["client_id"]
c.LocalPodSpawner.client_secret = settings["client_secret"]
c.LocalPodSpawner.home_dir_template = settings["workdir"] + "/home/{{username}}"
c.Spawner.start_timeout = 30
c.Spawner.http_timeout = 20
"""


@dataclass
class LiveHub:
    workdir: Path
    provider: OidcProvider
    custom: dict[str, Any]
    roles: list[dict[str, Any]]
    port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.url}/hub/api"
        self.callback = f"{self.url}/hub/oauth_callback"
        self._process: ManagedProcess | None = None
        self.client: OidcClient | None = None

    def start(self, access_token_ttl: int) -> LiveHub:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client = self.provider.register_client(
            [self.callback], access_token_ttl=access_token_ttl
        )
        settings = {
            "port": self.port,
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "proxy_token": secrets.token_hex(16),
            "chp": str(CHP),
            "workdir": str(self.workdir),
            "cookie_secret": secrets.token_hex(32),
            "client_id": self.client.client_id,
            "client_secret": self.client.client_secret,
            "issuer": self.provider.issuer,
            "callback": self.callback,
            "admin_token": self.admin_token,
            "roles": self.roles,
            "custom": self.custom,
        }
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(CONFIG.format(settings=json.dumps(settings)))
        env = dict(os.environ)
        env["JUPYTERHUB_CRYPT_KEY"] = base64.b64encode(os.urandom(32)).decode()
        env["PATH"] = f"{CHP.parent}:{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(ROOT)
        jupyterhub = shutil.which("jupyterhub", path=str(Path(sys.executable).parent))
        self._process = ManagedProcess(
            "jupyterhub",
            [jupyterhub or "jupyterhub", "-f", str(config)],
            self.workdir / "hub.log",
            env=env,
            cwd=self.workdir,
        ).start()
        self._process.wait_until(self._ready, timeout=60, what=f"{self.api}/")
        return self

    def _ready(self) -> bool:
        return httpx.get(f"{self.api}/", timeout=2).status_code == 200

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(timeout=15)
            self._process = None

    def log_tail(self) -> str:
        return self._process.log_tail() if self._process else ""

    # -- REST API ---------------------------------------------------------------------------

    def admin(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api, headers={"Authorization": f"token {self.admin_token}"}, timeout=30
        )

    async def login(self, username: str) -> httpx.AsyncClient:
        """A browser-like client logged in to the Hub as ``username`` through the provider."""
        http = httpx.AsyncClient(timeout=30)
        callback = await drive_login(
            http, f"{self.url}/hub/oauth_login", username, issuer=self.provider.issuer
        )
        response = await http.get(callback, follow_redirects=True)
        if response.status_code != 200:
            await http.aclose()
            raise AssertionError(f"login of {username} ended with {response.status_code}")
        return http

    def pod(self, user: str, server: str = "") -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.workdir / f"pod-{user}-{server or 'default'}.json").read_text()
        )
        return data
