"""Turn the command line (and the parent's JSON) into settings, refuse unsafe starts, run.

The S3 listener (``--s3-listen``) is built by :func:`make_s3_app` from the same mounts and
credentials. Standalone: runs as the invoking user (never root) with Basic credentials from
``KUBEPIE_ACCESS_KEY`` / ``KUBEPIE_SECRET_KEY``. Backend: the identity, mounts and per-server
secret come from the parent as JSON (stdin by default, never the command line); the secret may
instead come from ``KUBEPIE_SERVER_SECRET``, which is removed from the environment at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import IO, Any

from kubepie.fileserver.asgi import ASGIApp
from kubepie.fileserver.mounts import Mounts
from kubepie.fileserver.settings import (
    BasicCredentials,
    FileServerSettings,
    SettingsError,
    TlsFiles,
    backend_settings,
    parse_address,
    parse_memory_limit,
    parse_roots,
)
from kubepie.s3.app import create_s3_app
from kubepie.s3.auth import (
    S3Authenticator,
    SigV4Authenticator,
    StaticKey,
    TrustedFrontAuthenticator,
)
from kubepie.s3.settings import S3Settings

SECRET_ENV = "KUBEPIE_SERVER_SECRET"  # noqa: S105 (a variable name)
ACCESS_ENV = "KUBEPIE_ACCESS_KEY"
SECRET_KEY_ENV = "KUBEPIE_SECRET_KEY"  # noqa: S105 (a variable name)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/kubepie/fileserver``, else ``~/.local/state/kubepie/fileserver``."""
    base = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "kubepie" / "fileserver"


def standalone_settings(
    *,
    roots: Sequence[str],
    listen: str,
    s3_listen: str | None,
    state_dir: str | None,
    environ: MutableMapping[str, str],
    euid: int,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    memory_limit_mb: str | None = None,
) -> FileServerSettings:
    """Settings for ``--standalone``; refuses root and missing credentials; pops the secret key
    from ``environ``."""
    if euid == 0:
        raise SettingsError(
            "--standalone refuses to run as root: run it as the user whose files it serves"
        )
    # The secret key leaves the environment at once (no child or crash dump inherits it).
    access, secret = environ.get(ACCESS_ENV, ""), environ.pop(SECRET_KEY_ENV, "")
    if not access or not secret:
        raise SettingsError(
            f"--standalone needs credentials: set {ACCESS_ENV} and {SECRET_KEY_ENV}"
        )
    if ":" in access:
        raise SettingsError(f"{ACCESS_ENV} must not contain ':' (HTTP Basic splits on it)")
    if bool(tls_cert) != bool(tls_key):
        raise SettingsError("--tls-cert and --tls-key go together")
    return FileServerSettings(
        mounts=parse_roots(roots),
        listen=parse_address(listen, "--listen"),
        s3_listen=parse_address(s3_listen, "--s3-listen") if s3_listen else None,
        auth=BasicCredentials(access, secret),
        username=environ.get("USER", "") or str(euid),
        state_dir=Path(state_dir) if state_dir else default_state_dir(environ),
        tls=TlsFiles(Path(tls_cert), Path(tls_key)) if tls_cert and tls_key else None,
        memory_limit_mb=parse_memory_limit(memory_limit_mb),
    )


def read_backend_settings(
    stream: IO[str],
    *,
    listen: str,
    s3_listen: str | None,
    state_dir: str | None,
    environ: MutableMapping[str, str],
    memory_limit_mb: str | None = None,
) -> FileServerSettings:
    """Settings from the parent's JSON on ``stream``; pops the secret from ``environ``.

    ``memory_limit_mb`` (the command line's) and the document's ``memory_limit_mb``: the lower
    one applies."""
    secret = environ.pop(SECRET_ENV, None)
    try:
        doc: Any = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"backend configuration is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SettingsError("backend configuration must be a JSON object")
    if state_dir and "state_dir" not in doc:
        doc["state_dir"] = state_dir
    limit = parse_memory_limit(memory_limit_mb)
    if limit is not None:
        given = doc.get("memory_limit_mb")
        doc["memory_limit_mb"] = min(limit, given) if isinstance(given, int) else limit
    return backend_settings(
        doc,
        listen=parse_address(listen, "--listen"),
        s3_listen=parse_address(s3_listen, "--s3-listen") if s3_listen else None,
        secret=secret,
    )


def make_s3_app(mounts: Mounts, settings: FileServerSettings) -> ASGIApp:
    """The S3 application for ``--s3-listen``: SigV4 with the standalone key pair, or the
    per-server secret behind the router (which has verified the signature already)."""
    auth: S3Authenticator
    if isinstance(settings.auth, BasicCredentials):
        auth = SigV4Authenticator(StaticKey(settings.auth.access_key, settings.auth.secret_key))
    else:
        auth = TrustedFrontAuthenticator(settings.auth.value)
    s3_settings = S3Settings(owner=settings.username or "kubepie", chunk_size=settings.block_size)
    return create_s3_app(mounts, auth, s3_settings)
