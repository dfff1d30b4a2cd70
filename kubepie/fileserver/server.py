"""Run the file server: bind the listeners, drop privileges, serve WebDAV (and S3) in one loop.

Order matters (:func:`run`): the listening sockets are created first, with the starting
process's ids (a unix socket gets mode 0600, so only its owner, the router, can connect); then
privileges are dropped when the process is root; only then are the mounts opened (each root
once, as a descriptor every path is resolved beneath) and the applications built. Both
listeners are uvicorn servers in the same event loop; SIGTERM and SIGINT stop both.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import stat
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import uvicorn

# Imported before privileges are dropped: uvicorn loads these lazily, and the dropped process
# may not be allowed to read the interpreter's directories any more.
import uvicorn.lifespan.off
import uvicorn.protocols.http.httptools_impl
import uvloop

from kubepie.fileserver.asgi import ASGIApp
from kubepie.fileserver.auth import AuthGate
from kubepie.fileserver.dav_app import create_dav_app
from kubepie.fileserver.http_limits import BoundedHttpToolsProtocol
from kubepie.fileserver.limits import apply_memory_limit, exit_on_memory_error
from kubepie.fileserver.mounts import Mounts
from kubepie.fileserver.privileges import (
    PrivilegeError,
    drop_privileges,
    fork_child,
    verify_dropped,
)
from kubepie.fileserver.settings import (
    Address,
    BasicCredentials,
    FileServerSettings,
    SettingsError,
    TcpAddress,
    TlsFiles,
    UnixAddress,
    open_mounts,
)
from kubepie.fileserver.sweep import start_sweep

logger = logging.getLogger(__name__)

#: Builds the S3 application for the ``--s3-listen`` listener from the opened mounts.
S3Factory = Callable[[Mounts, FileServerSettings], ASGIApp]


def bind(address: Address) -> socket.socket:
    """A listening socket for ``address``; a unix socket is made 0600 before it listens."""
    if isinstance(address, UnixAddress):
        path = address.path
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                path.unlink()  # a stale socket of an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address.host, address.port))
        except OSError as exc:
            sock.close()
            raise SettingsError(f"cannot listen on {address}: {exc.strerror}") from exc
    sock.listen(1024)
    sock.set_inheritable(False)
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class Listener:
    app: ASGIApp
    sock: socket.socket
    tls: TlsFiles | None = None
    #: Add a ``Date`` header (the applications send none): standalone only, since behind the
    #: router its own server adds one and a second would be forwarded.
    date_header: bool = False


async def serve(listeners: Sequence[Listener]) -> None:
    """Serve every listener until SIGTERM or SIGINT."""
    servers = [
        _Server(
            uvicorn.Config(
                item.app,
                lifespan="off",
                log_level="warning",
                access_log=False,
                http=BoundedHttpToolsProtocol,  # httptools, with a bounded request head
                ws="none",
                server_header=False,
                date_header=item.date_header,
                timeout_graceful_shutdown=5,
                ssl_certfile=str(item.tls.cert) if item.tls else None,
                ssl_keyfile=str(item.tls.key) if item.tls else None,
            )
        )
        for item in listeners
    ]
    loop = asyncio.get_running_loop()
    exit_on_memory_error(loop)

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    pairs = zip(servers, listeners, strict=True)
    housekeeping = asyncio.create_task(_give_memory_back(HOUSEKEEPING_INTERVAL))
    try:
        await asyncio.gather(*(server.serve(sockets=[item.sock]) for server, item in pairs))
    finally:
        housekeeping.cancel()


#: Seconds between returns of freed memory to the system (see :func:`_give_memory_back`).
HOUSEKEEPING_INTERVAL = 30.0


async def _give_memory_back(interval: float) -> None:
    """Collect cycles and trim the C heap now and then.

    A large PROPFIND builds its whole XML answer in memory; without this the process keeps
    that peak for good (about 15 MB for 10,000 entries), which is what an idle per-user server
    should not cost. Both calls take milliseconds.
    """
    libc = ctypes.CDLL(None)
    while True:
        await asyncio.sleep(interval)
        gc.collect()
        libc.malloc_trim(0)


#: glibc ``mallopt`` parameters (``<malloc.h>``).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def tune_allocator() -> None:
    """Make the C heap give memory back to the system; call before any thread starts.

    By default glibc gives each thread that allocates an arena of its own, whose free top the
    periodic ``malloc_trim`` does not return, and raises its mmap threshold after the first
    large block is freed, so later multi-megabyte answers (a 10,000-entry PROPFIND) land in
    the heap and fragment it: an idle server stayed 20-25 MB above its start. One arena,
    blocks of 4 MiB and more always mmapped (returned when freed) and a high trim threshold
    (the 1 MiB I/O buffers stay in the heap, reused without page faults; the housekeeping
    trim returns them when idle) keep it within about 12 MB at unchanged GET/PUT speed.
    Without glibc (no ``mallopt``) nothing changes.
    """
    libc = ctypes.CDLL(None)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return
    mallopt(_M_ARENA_MAX, 1)
    mallopt(_M_MMAP_THRESHOLD, 4 << 20)
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def build_apps(
    settings: FileServerSettings, s3_factory: S3Factory | None
) -> tuple[ASGIApp, ASGIApp | None]:
    """The WebDAV app (behind its auth gate) and the S3 app; call after dropping privileges.

    Also starts the one-off removal of temporary files that crashed uploads left behind
    (:mod:`kubepie.fileserver.sweep`), as the user, in the background.
    """
    mounts = open_mounts(settings.mounts)
    start_sweep(mounts.values())
    dav = AuthGate(
        create_dav_app(
            mounts,
            username=settings.username,
            state_dir=settings.state_dir,
            block_size=settings.block_size,
        ),
        settings.auth,
    )
    s3 = None
    if settings.s3_listen is not None:
        if s3_factory is None:
            raise SettingsError("--s3-listen: this build has no S3 application")
        s3 = s3_factory(mounts, settings)
    return dav, s3


def run(settings: FileServerSettings, s3_factory: S3Factory | None = None) -> None:
    """Bind, drop privileges (when root and told to), then serve until stopped.

    Never serves as root: without ``settings.run_as`` a root process is refused.
    """
    if settings.run_as is None and (os.geteuid() == 0 or os.getegid() == 0):
        raise PrivilegeError("refusing to serve files as root: give the identity to run as")
    tune_allocator()
    apply_memory_limit(settings.memory_limit_mb)
    socks = [bind(settings.listen)]
    if settings.s3_listen is not None:
        socks.append(bind(settings.s3_listen))
    if settings.run_as is not None:
        if os.geteuid() == 0:
            drop_privileges(settings.run_as)
        else:  # started as the user already (a pod with runAsUser): prove it
            verify_dropped(settings.run_as)
    dav, s3 = build_apps(settings, s3_factory)
    logger.info(
        "serving %s (uid %d, gids %s) on %s%s; mounts: %s",
        settings.username or "?",
        os.getuid(),
        ",".join(str(g) for g in os.getgroups()),
        settings.listen,
        f", S3 on {settings.s3_listen}" if settings.s3_listen else "",
        ", ".join(f"{m.name}{' (ro)' if m.read_only else ''}" for m in settings.mounts),
    )
    standalone = isinstance(settings.auth, BasicCredentials)
    listeners = [Listener(dav, socks[0], settings.tls, standalone)]
    if s3 is not None:
        listeners.append(Listener(s3, socks[1], settings.tls, standalone))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(listeners))


def fork_server(settings: FileServerSettings, s3_factory: S3Factory | None = None) -> int:
    """Run the server in a forked child of this (already imported, typically root) process;
    return the child's pid. For a local backend: no ``exec``, so the dropped child needs no
    access to the interpreter's files. Stop it with SIGTERM and reap it with ``waitpid``."""

    def child() -> int:
        run(settings, s3_factory)
        return 0

    return fork_child(child)


__all__ = [
    "Listener",
    "S3Factory",
    "TcpAddress",
    "bind",
    "build_apps",
    "fork_server",
    "run",
    "serve",
    "tune_allocator",
]
