"""Pure decisions of the local backend: who may get a server, which server to stop, and the
document a file server is started with. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identity.models import Identity
from identity.storage import MountSpec, ResolvedMount, resolve_mounts
from kubepie.backends.errors import IdentityRefused

#: ``sun_path`` holds 108 bytes on Linux, the terminating NUL included.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True, slots=True)
class ProcessMode:
    """How the backend may start servers: as any user (root), or only as itself."""

    privileged: bool
    #: The uid the backend runs as: the only identity an unprivileged backend serves.
    uid: int

    def describe(self) -> str:
        if self.privileged:
            return "running as root: each user's file server runs with that user's uid and gids"
        return (
            f"running without root (uid {self.uid}): serving only identities with uid "
            f"{self.uid}, with this process's own groups; other users are refused. Start the "
            "router as root to serve everyone (CAP_SETUID without root is not enough: the file "
            "server proves its drop by failing to regain uid 0)"
        )


def process_mode(euid: int, uid: int) -> ProcessMode:
    """The mode for a process with effective uid ``euid`` and real uid ``uid``."""
    return ProcessMode(privileged=euid == 0, uid=uid)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """Everything that decides what a user's server is: a change means a new server."""

    username: str
    uid: int
    gid: int
    gids: tuple[int, ...]
    mounts: tuple[ResolvedMount, ...]


def server_spec(identity: Identity, specs: tuple[MountSpec, ...], mode: ProcessMode) -> ServerSpec:
    """The server ``identity`` gets, or :class:`IdentityRefused` when it may not have one."""
    if identity.uid == 0 or identity.gid == 0 or 0 in identity.gids:
        raise IdentityRefused("refusing to run a file server as uid 0, gid 0 or group 0")
    if identity.uid < 0 or identity.gid < 0:
        raise IdentityRefused("refusing negative ids")
    if not mode.privileged and identity.uid != mode.uid:
        raise IdentityRefused(
            f"this backend runs without root as uid {mode.uid} and serves only that user; "
            f"uid {identity.uid} is refused"
        )
    return ServerSpec(
        username=identity.username,
        uid=identity.uid,
        gid=identity.gid,
        gids=identity.gids,
        mounts=resolve_mounts(specs, identity),
    )


def fileserver_document(spec: ServerSpec, secret: str, state_dir: Path | None) -> dict[str, Any]:
    """The backend-mode JSON document of ``kubepie fileserver`` (see
    :func:`kubepie.fileserver.settings.backend_settings`)."""
    doc: dict[str, Any] = {
        "identity": {
            "username": spec.username,
            "uid": spec.uid,
            "gid": spec.gid,
            "gids": list(spec.gids),
        },
        "mounts": [{"name": m.name, "path": m.path, "read_only": m.read_only} for m in spec.mounts],
        "secret": secret,
    }
    if state_dir is not None:
        doc["state_dir"] = str(state_dir)
    return doc


@dataclass(frozen=True, slots=True)
class Candidate:
    """A running server as eviction sees it."""

    uid: int
    last_used: float
    ready: bool


def idle_expired(last_used: float, now: float, idle_timeout: float) -> bool:
    """True when a server last used at ``last_used`` has been idle for ``idle_timeout``."""
    return now - last_used >= idle_timeout


def eviction_victim(candidates: Iterable[Candidate], now: float, min_idle: float) -> int | None:
    """The uid of the least recently used ready server idle for at least ``min_idle`` seconds,
    or None when every server is starting or busy (the caller then refuses with 503)."""
    idle = [c for c in candidates if c.ready and now - c.last_used >= min_idle]
    if not idle:
        return None
    return min(idle, key=lambda c: c.last_used).uid


def check_socket_path(path: Path) -> Path:
    """``path`` when it fits in a unix socket address; ValueError naming it otherwise."""
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        raise ValueError(
            f"unix socket path {str(path)!r} is longer than {MAX_SOCKET_PATH} bytes: "
            "choose a shorter state_dir"
        )
    return path


#: Environment variables the fork helper (and so every user's server) inherits from the router.
#: An allow-list: the router's environment holds secrets (``KUBEPIE_*`` keys, client secrets)
#: that a user's process must never see.
HELPER_ENVIRONMENT = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONUNBUFFERED"}
)


def helper_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` the fork helper gets: :data:`HELPER_ENVIRONMENT` and ``LC_*``."""
    return {
        key: value
        for key, value in environ.items()
        if key in HELPER_ENVIRONMENT or key.startswith("LC_")
    }
