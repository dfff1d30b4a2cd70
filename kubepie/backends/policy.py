"""Pure decisions of the local backend: who may get a server, which server to stop, the
document a file server is started with, and which spawn requests the fork helper accepts.
No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
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


def fileserver_document(
    spec: ServerSpec, secret: str, state_dir: Path | None, memory_limit_mb: int | None = None
) -> dict[str, Any]:
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
    if memory_limit_mb is not None:
        doc["memory_limit_mb"] = memory_limit_mb
    return doc


@dataclass(frozen=True, slots=True)
class Candidate:
    """A running server as eviction sees it: ``busy`` while a request is in flight."""

    uid: int
    last_used: float
    ready: bool
    busy: bool = False


def idle_expired(last_used: float, now: float, idle_timeout: float) -> bool:
    """True when a server last used at ``last_used`` has been idle for ``idle_timeout``."""
    return now - last_used >= idle_timeout


def eviction(
    candidates: Iterable[Candidate], now: float, min_idle: float
) -> tuple[int, float] | None:
    """The server to stop for a newcomer: the uid of the least recently used ready server with
    no request in flight, and the seconds until it has been idle for ``min_idle`` (0: now).
    None when every server is starting or busy (the caller then refuses with 503)."""
    idle = [c for c in candidates if c.ready and not c.busy]
    if not idle:
        return None
    lru = min(idle, key=lambda c: c.last_used)
    return lru.uid, max(0.0, min_idle - (now - lru.last_used))


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


# -- what the fork helper accepts ------------------------------------------------------------

#: The largest valid uid/gid (``(uid_t) -1`` means "no change" to setresuid).
MAX_ID = 2**32 - 2
_SOCKET_NAME = re.compile(r"^u(?P<uid>[0-9]{1,10})-[0-9]{1,19}(?P<s3>-s3)?\.sock$")
_SPAWN_KEYS = frozenset({"op", "id", "document", "listen", "s3_listen", "state_dir", "drop"})


@dataclass(frozen=True, slots=True)
class HelperPolicy:
    """What the fork helper (:mod:`kubepie.backends.zygote`) lets the router ask of it, fixed
    on its command line when it starts: a router that was taken over can ask for nothing more.

    Servers run only as accounts from ``min_uid`` on, with gids from ``min_gid`` on (or in
    ``allowed_low_gids``), never as root; their sockets lie in ``run_dir`` and are given to
    ``socket_owner`` (the router's account, when it dropped root); their state directories are
    ``state_root/<uid>``.
    """

    run_dir: Path
    state_root: Path
    min_uid: int = 1000
    min_gid: int = 1000
    allowed_low_gids: frozenset[int] = frozenset()
    socket_owner: tuple[int, int] | None = None

    def to_args(self) -> list[str]:
        """The helper's command-line arguments for this policy (see :meth:`from_args`)."""
        args = [
            f"--run-dir={self.run_dir}",
            f"--state-root={self.state_root}",
            f"--min-uid={self.min_uid}",
            f"--min-gid={self.min_gid}",
            *(f"--allow-low-gid={g}" for g in sorted(self.allowed_low_gids)),
        ]
        if self.socket_owner is not None:
            args.append(f"--socket-owner={self.socket_owner[0]}:{self.socket_owner[1]}")
        return args

    @classmethod
    def from_args(
        cls,
        run_dir: str,
        state_root: str,
        min_uid: int,
        min_gid: int,
        allowed_low_gids: Sequence[int],
        socket_owner: str | None,
    ) -> HelperPolicy:
        owner = None
        if socket_owner:
            uid, _, gid = socket_owner.partition(":")
            owner = (int(uid), int(gid))
        return cls(
            Path(run_dir),
            Path(state_root),
            min_uid,
            min_gid,
            frozenset(allowed_low_gids),
            owner,
        )


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    """A spawn request the helper accepted (see :func:`check_spawn`)."""

    id: int
    document: dict[str, Any]
    listen: Path
    s3_listen: Path | None
    state_dir: Path | None
    drop: bool
    uid: int
    gid: int


class SpawnRefused(ValueError):
    """The helper will not serve this spawn request; the message says why."""


def _number(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpawnRefused(f"{what} is not an integer")
    return value


def check_ids(uid: int, gid: int, gids: Sequence[int], helper: HelperPolicy) -> None:
    """:class:`SpawnRefused` unless ``uid``, ``gid`` and ``gids`` are a regular account's."""
    if not 0 < uid <= MAX_ID or uid < helper.min_uid:
        raise SpawnRefused(f"uid {uid} is root, out of range or below min_uid {helper.min_uid}")
    for g in (gid, *gids):
        if not 0 < g <= MAX_ID:
            raise SpawnRefused(f"gid {g} is root or out of range")
        if g < helper.min_gid and g not in helper.allowed_low_gids:
            raise SpawnRefused(f"gid {g} is below min_gid {helper.min_gid} and not allowed")


def _socket(value: object, what: str, helper: HelperPolicy, uid: int, s3: bool) -> Path:
    if not isinstance(value, str):
        raise SpawnRefused(f"{what} is not a path")
    path = Path(value)
    match = _SOCKET_NAME.match(path.name)
    if (
        path.parent != helper.run_dir
        or match is None
        or int(match["uid"]) != uid
        or bool(match["s3"]) != s3
    ):
        raise SpawnRefused(f"{what} is not this user's socket in {helper.run_dir}")
    return check_socket_path(path)


def check_spawn(request: Mapping[str, Any], helper: HelperPolicy, root: bool) -> SpawnRequest:
    """``request`` when the helper may serve it, else :class:`SpawnRefused`: exactly the known
    keys with their types, ids of a regular account (:func:`check_ids`), the sockets and the
    state directory where ``helper`` puts them, and a drop to the user whenever the helper is
    root (a root helper never serves as root)."""
    unknown = set(request) - _SPAWN_KEYS
    if unknown:
        raise SpawnRefused(f"unknown keys {sorted(unknown)}")
    if request.get("op") != "spawn":
        raise SpawnRefused("not a spawn request")
    request_id = _number(request.get("id"), "id")
    document = request.get("document")
    if not isinstance(document, dict):
        raise SpawnRefused("document is not an object")
    identity = document.get("identity")
    if not isinstance(identity, dict):
        raise SpawnRefused("document.identity is not an object")
    uid = _number(identity.get("uid"), "uid")
    gid = _number(identity.get("gid"), "gid")
    gids = identity.get("gids", [])
    if not isinstance(gids, list):
        raise SpawnRefused("gids is not a list")
    check_ids(uid, gid, [_number(g, "gid") for g in gids], helper)
    drop = request.get("drop")
    if not isinstance(drop, bool):
        raise SpawnRefused("drop is not a boolean")
    if root and not drop:
        raise SpawnRefused("a root helper serves only after dropping to the user")
    listen = _socket(request.get("listen"), "listen", helper, uid, s3=False)
    s3_value = request.get("s3_listen")
    s3_listen = None if s3_value is None else _socket(s3_value, "s3_listen", helper, uid, True)
    state_value = request.get("state_dir")
    state_dir = None
    if state_value is not None:
        if state_value != str(helper.state_root / str(uid)):
            raise SpawnRefused(f"state_dir is not {helper.state_root}/<uid>")
        state_dir = Path(state_value)
    return SpawnRequest(request_id, document, listen, s3_listen, state_dir, drop, uid, gid)
