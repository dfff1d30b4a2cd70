"""The configuration ``kubepie demo`` generates for ``kubepie serve``. Pure.

:func:`serve_config` is the YAML document (as a dict) of :class:`kubepie.settings.KubePieSettings`:
loopback listeners, the dev issuer and its client, a static directory, the local backend and
three kinds of mounts over the sample tree (``home``, read-only ``data``, ``group-<group>``).
Secrets are not in it: :func:`serve_environment` passes the client secret and the credential
encryption key as ``KUBEPIE_*`` variables to the child, so the file holds nothing secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubepie.demo.accounts import Population

#: The router's client at the dev issuer.
CLIENT_ID = "kubepie-demo"
#: The ``aud`` of access tokens: the resource the router serves.
AUDIENCE = "kubepie"


@dataclass(frozen=True, slots=True)
class DemoLayout:
    """Where the demo keeps things under its directory (``--dir``)."""

    base: Path

    @property
    def storage(self) -> Path:
        """The sample data tree."""
        return self.base / "storage"

    @property
    def state(self) -> Path:
        """The router's state (credential database)."""
        return self.base / "state"

    @property
    def issuer_key(self) -> Path:
        return self.base / "issuer-key.pem"

    @property
    def encryption_key(self) -> Path:
        return self.base / "credentials-key.txt"

    @property
    def printed_credential(self) -> Path:
        """Owner and id (no secret) of the app credential the last run printed."""
        return self.base / "printed-credential.json"

    @property
    def config(self) -> Path:
        return self.base / "kubepie.yaml"

    @property
    def directory(self) -> Path:
        return self.base / "directory.yaml"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The demo's addresses, all on loopback."""

    host: str
    port: int
    s3_port: int
    issuer_port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.issuer_port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.url}/callback"


def min_uid_for(population: Population) -> int:
    """1000 (regular accounts), lowered to the lowest demo uid if an account is below it."""
    return max(1, min([1000, *(u.uid for u in population.users)]))


def serve_config(
    layout: DemoLayout, endpoints: Endpoints, population: Population
) -> dict[str, Any]:
    """The ``kubepie serve`` configuration of the demo."""
    storage = layout.storage
    mounts: list[dict[str, Any]] = [
        {"name": "home", "path": f"{storage}/home/{{username}}"},
        {"name": "data", "path": f"{storage}/data", "read_only": True},
    ]
    if population.multi_user:
        mounts.append({"name": "group-{group}", "path": f"{storage}/group/{{group}}"})
    return {
        "listen": f"{endpoints.host}:{endpoints.port}",
        "s3_listen": f"{endpoints.host}:{endpoints.s3_port}",
        "public_url": endpoints.url,
        "oidc": {
            "issuer": endpoints.issuer,
            "client_id": CLIENT_ID,
            "audiences": [AUDIENCE],
            "scopes": ["openid", "profile", "email", "offline_access"],
        },
        "identity": {
            "source": "static",
            "static_file": str(layout.directory),
            "username_claim": "preferred_username",
            "uid_claim": "uid",
            "gid_claim": "gid",
            "gids_claim": "gids",
            "groups_claim": "groups",
            "min_uid": min_uid_for(population),
            "cache_ttl": 60,
        },
        "mounts": mounts,
        "backend": {"kind": "local", "idle_timeout": 900},
        "state_dir": str(layout.state),
        "accounting": {"log_file": str(layout.base / "transfers.jsonl")},
    }


def serve_environment(client_secret: str, encryption_key: str) -> dict[str, str]:
    """The secret settings, as the ``KUBEPIE_*`` variables :mod:`kubepie.settings` reads."""
    return {
        "KUBEPIE_OIDC_CLIENT_SECRET": client_secret,
        "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": encryption_key,
    }
