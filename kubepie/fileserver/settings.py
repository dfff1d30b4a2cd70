"""The file server's one settings object, and the pure parsing that builds it.

Two ways in (see ``kubepie fileserver --help``):

* standalone: mounts from ``--root NAME=PATH``, HTTP Basic credentials from
  ``KUBEPIE_ACCESS_KEY`` / ``KUBEPIE_SECRET_KEY``; runs as the invoking (non-root) user;
* backend: a JSON document from the parent (on stdin or in a file) with the identity, the
  mounts and the per-server secret; see :func:`backend_settings` for its shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identity.models import Identity
from identity.storage import ResolvedMount
from kubepie.fileserver.errors import PathRefused
from kubepie.fileserver.mounts import Mount, Mounts, check_segment
from kubepie.fileserver.privileges import Credentials, PrivilegeError

#: wsgidav reads and writes bodies in blocks of this size; the WSGI adapter pays per block, so
#: anything below 1 MiB costs throughput (8 KiB blocks are 40 times slower here).
DEFAULT_BLOCK_SIZE = 1024 * 1024

_TCP = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class TcpAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UnixAddress:
    """A unix socket path; the socket is created with mode 0600 (only its owner connects)."""

    path: Path

    def __str__(self) -> str:
        return f"unix:{self.path}"


Address = TcpAddress | UnixAddress


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """Standalone mode: one access key / secret key pair (HTTP Basic for WebDAV, SigV4 for S3)."""

    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"BasicCredentials(access_key={self.access_key!r}, secret_key=<hidden>)"


@dataclass(frozen=True, slots=True)
class ServerSecret:
    """Backend mode: every request carries this value in ``X-KubePie-Server-Secret``."""

    value: str

    def __repr__(self) -> str:
        return "ServerSecret(<hidden>)"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM certificate chain and its private key, for serving HTTPS directly (standalone)."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class FileServerSettings:
    """Everything one file-server process needs, read once at start."""

    #: The mounts, as plain data: :func:`open_mounts` turns them into :class:`Mounts` once the
    #: process runs as the user (resolving a root as root could see what the user cannot).
    mounts: tuple[ResolvedMount, ...]
    listen: Address
    auth: BasicCredentials | ServerSecret
    #: The S3 listener, or None to serve WebDAV only.
    s3_listen: Address | None = None
    #: Drop to these ids before opening any user path (backend mode started as root).
    run_as: Credentials | None = None
    #: Who the server serves (shown in listings, logs); the identity of every request.
    username: str = ""
    #: Where locks persist across restarts; None keeps them in memory only.
    state_dir: Path | None = None
    #: Bytes per read/write block on the data path (see :data:`DEFAULT_BLOCK_SIZE`).
    block_size: int = DEFAULT_BLOCK_SIZE
    #: Serve both listeners over TLS (standalone only; behind the router, it terminates TLS).
    tls: TlsFiles | None = None
    #: Ceiling of the process's data memory (``RLIMIT_DATA``) in MiB, set before serving;
    #: None leaves the inherited limit. See :mod:`kubepie.fileserver.limits` for what the
    #: server needs (512 MiB and up; 1024 MiB for listings of 100,000 entries).
    memory_limit_mb: int | None = None


def parse_address(text: str, what: str = "--listen") -> Address:
    """``unix:/path`` or ``HOST:PORT`` / ``[V6]:PORT``."""
    if text.startswith("unix:"):
        path = Path(text[len("unix:") :])
        if not path.is_absolute():
            raise SettingsError(f"{what}: unix socket path {str(path)!r} is not absolute")
        return UnixAddress(path)
    match = _TCP.match(text)
    if not match:
        raise SettingsError(f"{what}: {text!r} is neither unix:/PATH nor HOST:PORT")
    port = int(match["port"])
    if not 0 < port < 65536:
        raise SettingsError(f"{what}: port {port} out of range")
    return TcpAddress(match["v6"] or match["host"], port)


def parse_memory_limit(text: str | None, what: str = "--memory-limit-mb") -> int | None:
    """A positive whole number of MiB, or None for an empty or missing value."""
    if text is None or not text.strip():
        return None
    try:
        value = int(text.strip())
    except ValueError as exc:
        raise SettingsError(f"{what}: {text!r} is not a whole number of MiB") from exc
    if value <= 0:
        raise SettingsError(f"{what}: {value} is not a positive number of MiB")
    return value


def open_mounts(mounts: Sequence[ResolvedMount]) -> Mounts:
    """The :class:`Mounts` for ``mounts``; call it as the user (it resolves each root)."""
    try:
        return Mounts(Mount(m.name, Path(m.path), m.read_only) for m in mounts)
    except (ValueError, OSError) as exc:
        raise SettingsError(f"mounts: {exc}") from exc


def parse_roots(roots: Sequence[str]) -> tuple[ResolvedMount, ...]:
    """``NAME=PATH`` (or ``NAME=PATH:ro`` for a read-only mount) for each ``--root``."""
    mounts: list[ResolvedMount] = []
    for item in roots:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SettingsError(f"--root: {item!r} is not NAME=PATH")
        read_only = path.endswith(":ro")
        if read_only:
            path = path[: -len(":ro")]
        mounts.append(_checked(ResolvedMount(name, path, read_only), "--root"))
    if not mounts:
        raise SettingsError("--root: at least one mount is needed")
    return _unique(mounts, "--root")


def _checked(mount: ResolvedMount, what: str) -> ResolvedMount:
    """``mount`` if its name is one safe segment and its path absolute (pure: no file access)."""
    try:
        check_segment(mount.name)
    except PathRefused as exc:
        raise SettingsError(f"{what}: mount name {mount.name!r}: {exc}") from exc
    if not mount.name or not mount.path.startswith("/"):
        raise SettingsError(f"{what}: mount {mount.name!r}: path {mount.path!r} is not absolute")
    return mount


def _unique(mounts: list[ResolvedMount], what: str) -> tuple[ResolvedMount, ...]:
    seen: set[str] = set()
    for mount in mounts:
        if mount.name in seen:
            raise SettingsError(f"{what}: mount {mount.name!r} is configured twice")
        seen.add(mount.name)
    return tuple(mounts)


def _field(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise SettingsError(f"{where}{key}: missing")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SettingsError(f"{where}{key}: expected {kind.__name__}")
    return value


def backend_document(
    identity: Identity,
    mounts: Sequence[ResolvedMount],
    secret: str,
    state_dir: str | None = None,
    memory_limit_mb: int | None = None,
) -> dict[str, Any]:
    """The JSON document a backend gives ``kubepie fileserver`` (the inverse of
    :func:`backend_settings`). Send it on the child's stdin or in a 0600 file, never in argv."""
    doc: dict[str, Any] = {
        "identity": {
            "username": identity.username,
            "uid": identity.uid,
            "gid": identity.gid,
            "gids": list(identity.gids),
        },
        "mounts": [{"name": m.name, "path": m.path, "read_only": m.read_only} for m in mounts],
        "secret": secret,
    }
    if state_dir is not None:
        doc["state_dir"] = state_dir
    if memory_limit_mb is not None:
        doc["memory_limit_mb"] = memory_limit_mb
    return doc


def backend_settings(
    doc: Mapping[str, Any],
    *,
    listen: Address,
    s3_listen: Address | None,
    secret: str | None = None,
) -> FileServerSettings:
    """Settings from the parent's JSON document.

    ``{"identity": {"username": str, "uid": int, "gid": int, "gids": [int]},
    "mounts": [{"name": str, "path": str, "read_only": bool}], "secret": str,
    "state_dir": str (optional), "memory_limit_mb": int (optional)}``. ``secret`` (from the
    environment) replaces a missing ``"secret"``.
    """
    ident = _field(doc, "identity", dict, "")
    uid = _field(ident, "uid", int, "identity.")
    gid = _field(ident, "gid", int, "identity.")
    gids = ident.get("gids", [])
    if not isinstance(gids, list) or not all(
        isinstance(g, int) and not isinstance(g, bool) for g in gids
    ):
        raise SettingsError("identity.gids: expected a list of int")
    username = ident.get("username", str(uid))
    if not isinstance(username, str):
        raise SettingsError("identity.username: expected str")
    try:
        run_as = Credentials(uid, gid, tuple(gids))
    except PrivilegeError as exc:
        raise SettingsError(f"identity: {exc}") from exc

    resolved: list[ResolvedMount] = []
    for i, item in enumerate(_field(doc, "mounts", list, "")):
        where = f"mounts[{i}]."
        if not isinstance(item, dict):
            raise SettingsError(f"mounts[{i}]: expected an object")
        read_only = item.get("read_only", False)
        if not isinstance(read_only, bool):
            raise SettingsError(f"{where}read_only: expected bool")
        resolved.append(
            ResolvedMount(
                _field(item, "name", str, where), _field(item, "path", str, where), read_only
            )
        )
    mounts = _unique([_checked(m, "mounts") for m in resolved], "mounts")

    value = doc.get("secret", secret)
    if not isinstance(value, str) or len(value) < 16:
        raise SettingsError("secret: missing or shorter than 16 characters")
    state_dir = doc.get("state_dir")
    if state_dir is not None and not isinstance(state_dir, str):
        raise SettingsError("state_dir: expected str")
    memory_limit_mb = doc.get("memory_limit_mb")
    if memory_limit_mb is not None and (
        not isinstance(memory_limit_mb, int)
        or isinstance(memory_limit_mb, bool)
        or memory_limit_mb <= 0
    ):
        raise SettingsError("memory_limit_mb: expected a positive int (MiB)")
    return FileServerSettings(
        mounts=mounts,
        listen=listen,
        s3_listen=s3_listen,
        auth=ServerSecret(value),
        run_as=run_as,
        username=username,
        state_dir=Path(state_dir) if state_dir else None,
        memory_limit_mb=memory_limit_mb,
    )
