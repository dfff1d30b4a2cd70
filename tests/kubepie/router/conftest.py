"""A real router for the tests: ``kubepie serve`` as a process, the real oidc-provider as the
issuer, and its local backend starting real per-user file servers (as root, each drops to its
user's ids).

Storage lives under a world-traversable directory in ``/tmp`` (the servers drop to the users'
uids and must reach it): ``home/<user>`` (0700, the user's), ``data`` (read-only mount) and
``group/<group>`` (0770, the group's).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures.oidc import OidcClient, OidcProvider, drive_login
from tests.fixtures.slapd import Slapd
from tests.support import ManagedProcess, free_port

#: Seconds before an idle user's server is stopped (short, so the lifecycle test can see it).
IDLE_TIMEOUT = 4
USERS = {
    "alice": (10001, 10001),
    "bob": (10002, 10002),
    "carol": (10003, 10003),
    "dave": (10004, 10004),
}
GROUPS = {
    "physics": 20001,
    "beamline-x": 20002,
    "alice": 10001,
    "bob": 10002,
    "carol": 10003,
    "dave": 10004,
}


@dataclass
class Router:
    name: str
    url: str
    s3_url: str
    area: Path
    config: Path
    client: OidcClient
    provider: OidcProvider
    env: dict[str, str]
    proc: ManagedProcess | None = None

    @property
    def accounting(self) -> Path:
        return self.area / f"accounting-{self.name}.jsonl"

    def start(self) -> None:
        self.proc = ManagedProcess(
            self.name,
            [sys.executable, "-m", "kubepie.cli", "serve", "--config", str(self.config)],
            self.area / "logs" / f"{self.name}.log",
            env=self.env,
        ).start()
        port = int(self.url.rsplit(":", 1)[1])
        self.proc.wait_for_port(port)
        self.proc.wait_for_port(int(self.s3_url.rsplit(":", 1)[1]))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def home(self, user: str) -> Path:
        return self.area / "home" / user


def _storage(area: Path) -> None:
    for user, (uid, gid) in USERS.items():
        home = area / "home" / user
        home.mkdir(parents=True)
        os.chown(home, uid, gid)
        home.chmod(0o700)
    for group, gid in GROUPS.items():
        path = area / "group" / group
        path.mkdir(parents=True)
        os.chown(path, 0, gid)
        path.chmod(0o2770)
    data = area / "data"
    data.mkdir()
    (data / "readme.txt").write_text("read-only data\n")  # what the S3 suite expects
    data.chmod(0o755)
    (area / "logs").mkdir()


@pytest.fixture(scope="session")
def router_area() -> Iterator[Path]:
    area = Path(tempfile.mkdtemp(prefix="kubepie-router-", dir="/tmp"))
    area.chmod(0o755)
    _storage(area)
    try:
        yield area
    finally:
        shutil.rmtree(area, ignore_errors=True)


CLAIMS_IDENTITY = {"source": "claims", "uid_claim": "uid", "gid_claim": "gid", "gids_claim": "gids"}


def start_router(
    provider: OidcProvider,
    area: Path,
    *,
    name: str,
    identity: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Router:
    """Start ``kubepie serve`` (config ``<area>/<name>.yaml``, state ``<area>/state-<name>``)."""
    port, s3_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    client = provider.register_client([f"{url}/callback"])
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "s3_listen": f"127.0.0.1:{s3_port}",
        "public_url": url,
        "oidc": {
            "issuer": provider.issuer,
            "client_id": client.client_id,
            "audiences": ["kubepie"],
            "scopes": ["openid", "profile", "groups"],
        },
        "identity": identity,
        "mounts": [
            {"name": "home", "path": f"{area}/home/{{username}}"},
            {"name": "data", "path": f"{area}/data", "read_only": True},
            {"name": "group-{group}", "path": f"{area}/group/{{group}}"},
        ],
        "backend": {"idle_timeout": IDLE_TIMEOUT},
        "state_dir": str(area / f"state-{name}"),
        "accounting": {"log_file": str(area / f"accounting-{name}.jsonl")},
        **(extra or {}),
    }
    path = area / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "KUBEPIE_OIDC_CLIENT_SECRET": client.client_secret,
        "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NO_PROXY": "*",
    }
    handle = Router(name, url, f"http://127.0.0.1:{s3_port}", area, path, client, provider, env)
    handle.start()
    return handle


@contextlib.contextmanager
def ldap_router_running(
    oidc_provider: OidcProvider, area: Path, slapd: Slapd, *, name: str, cache_ttl: float
) -> Iterator[Router]:
    """A router whose identities come from the test ``slapd`` (cached ``cache_ttl`` s)."""
    identity = {
        "source": "ldap",
        "cache_ttl": cache_ttl,
        "ldap": {
            "url": slapd.url,
            "user_base": slapd.user_base,
            "group_base": slapd.group_base,
            "bind_dn": slapd.bind_dn,
            "bind_password": slapd.bind_password,
        },
    }
    handle = start_router(oidc_provider, area, name=name, identity=identity)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def router(oidc_provider: OidcProvider, router_area: Path) -> Iterator[Router]:
    handle = start_router(oidc_provider, router_area, name="router", identity=CLAIMS_IDENTITY)
    try:
        yield handle
    finally:
        handle.stop()


async def browser_login(router: Router, username: str) -> httpx.AsyncClient:
    """An httpx client logged in through ``/login`` and the provider's pages (cookies kept)."""
    http = httpx.AsyncClient(timeout=30, trust_env=False)
    callback = await drive_login(
        http, f"{router.url}/login?next=/api/v1/whoami", username, issuer=router.provider.issuer
    )
    assert callback.startswith(f"{router.url}/callback?")
    response = await http.get(callback)
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/api/v1/whoami"
    # As a browser on this site's own pages: cookie-authenticated API writes need a same-origin
    # Origin (or the CSRF token); tests of the refusal take this header away.
    http.headers["Origin"] = router.url
    return http


async def create_credential(http: httpx.AsyncClient, router: Router, **params: Any) -> Any:
    response = await http.post(f"{router.url}/api/v1/credentials", json=params)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def alice_web(router: Router) -> AsyncIterator[httpx.AsyncClient]:
    http = await browser_login(router, "alice")
    try:
        yield http
    finally:
        await http.aclose()


@pytest.fixture(scope="module")
async def dave_credential(router: Router) -> Any:
    """A credential of dave, minted with a token that names no groups: his mounts are exactly
    ``home`` and ``data``, the buckets the S3 suite expects."""
    claims = router.provider.claims_for("dave", groups=[], gids=[10004])
    token = router.provider.mint(claims)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        return await create_credential(http, router, description="S3 suite")


async def accounted(
    router: Router, match: Callable[[dict[str, Any]], bool], wait_s: float = 10.0
) -> list[dict[str, Any]]:
    """The accounting entries matching ``match``, waiting for the first one: a request is
    accounted when its handler returns, which may be just after the client has its answer."""
    for _ in range(int(wait_s / 0.05)):
        if router.accounting.exists():
            lines = router.accounting.read_text().splitlines()
            found = [e for e in map(json.loads, lines) if match(e)]
            if found:
                return found
        await asyncio.sleep(0.05)
    raise AssertionError("no matching accounting entry")


def basic(cred: dict[str, Any]) -> tuple[str, str]:
    return (cred["access_key_id"], cred["secret_access_key"])
