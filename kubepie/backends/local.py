"""The local backend: one ``kubepie fileserver`` process per user on this machine.

* **One start per user.** Servers are kept by uid. The first ``ensure`` of a uid puts a starting
  entry in the table synchronously (no ``await`` between the lookup and the insert) and starts it
  in the background; every concurrent ``ensure`` of that uid awaits the same future. An
  identity of that uid with another name, other groups or other mounts (a changed group
  membership) replaces the server, so the kernel always checks today's groups.
* **How a server starts.** A pre-imported helper process (:mod:`.zygote`) forks it; as root the
  child drops to the user's uid, gid and supplementary gids (:mod:`kubepie.fileserver.
  privileges`), without ``exec``. Each server gets a fresh random secret and a unix socket in
  ``<state_dir>/run`` (0700, the router's): the helper binds it with mode 0600 and gives it to
  the router's account (``socket_owner``) before the child drops, so the user's process serves
  on it but neither that user nor any other can connect to it or reach its path. WebDAV locks
  persist in ``<state_dir>/fileserver/<uid>`` (0700, the user's; created by the helper), which
  the server reaches through a descriptor opened before the drop, so ``state_dir`` itself can
  stay private. Each server's data is capped by ``backend.memory_limit_mb``.
* **Privilege separation.** The helper is the only part that needs root. It is started before
  ``kubepie serve`` drops the router to its own account, with a :class:`~.policy.HelperPolicy`
  on its command line (``min_uid``, ``min_gid``, the run and state directories), and checks
  every request against it. A helper that dies cannot be started again by a router without
  root: requests then fail with 503 until the router is restarted.
* **S3.** Unless built with ``s3=False``, each server also serves S3 on a second socket beside
  the first (``Upstream.s3_address``), behind the same secret.
* **Ready before use.** ``ensure`` returns once the server answers a request carrying its
  secret; after ``backend.start_timeout`` it fails with :class:`StartTimeout` (503).
* **Crashes.** The helper reports every exit; the entry is dropped and the next ``ensure``
  starts a new server. ``report_failure`` probes the server and retires it when it does not
  answer.
* **Idle and capacity.** A reaper stops servers unused for ``backend.idle_timeout`` (neither
  ``ensure`` nor ``touch``, and no I/O by the process: a long transfer keeps it alive). A
  request is in flight from the ``ensure`` that returned its server to the ``touch`` the router
  sends when it is done. A new user beyond ``backend.max_servers`` at once evicts the least
  recently used server with no request in flight, once that one has been idle for
  ``evict_idle`` seconds (a short bound, so a client's next request a moment later does not
  find its server gone; the newcomer waits for it). Only when every server is starting or busy
  does the request fail with :class:`CapacityExhausted` (503), rather than cutting a transfer.
  The limit counts servers in the table; an evicted one may still be finishing for up to
  ``grace`` seconds.
* **Without root** only the invoking user's uid is served (:class:`IdentityRefused`, 403, for
  anyone else); this is logged when the backend starts.
* **Shutdown.** ``aclose`` ends the helper, which sends SIGTERM to every server and SIGKILL
  after ``grace`` seconds; if the router dies, the helper sees its pipe close and does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from identity.models import Identity
from identity.storage import MountSpec
from kubepie.backends import policy, readiness
from kubepie.backends.base import BackendMetrics, NoMetrics, Upstream
from kubepie.backends.errors import (
    BackendClosed,
    BackendError,
    BackendUnavailable,
    CapacityExhausted,
    IdentityRefused,
    StartFailed,
)
from kubepie.backends.process import ChildProcess, Spawner
from kubepie.settings.models import BackendSettings

log = logging.getLogger("kubepie.backends")


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What :meth:`LocalBackend.servers` reports about one server (no secret)."""

    username: str
    uid: int
    pid: int | None
    state: Literal["starting", "ready"]
    idle_seconds: float


@dataclass(eq=False)
class _Server:
    """One entry of the server table."""

    spec: policy.ServerSpec
    socket: Path
    s3_socket: Path | None
    secret: str = field(repr=False)
    last_used: float
    ready: asyncio.Future[Upstream] = field(repr=False)
    state: Literal["starting", "ready", "retired"] = "starting"
    process: ChildProcess | None = None
    #: The process's I/O counters at the reaper's last look (see :func:`_io_total`).
    io_seen: int | None = None
    #: Requests between ``ensure`` and ``touch`` (the router's bracket around each request).
    in_flight: int = 0

    def upstream(self) -> Upstream:
        s3 = None if self.s3_socket is None else f"unix:{self.s3_socket}"
        return Upstream(f"unix:{self.socket}", self.secret, s3)


class LocalBackend:
    """A :class:`~kubepie.backends.base.Backend` running file servers as local processes."""

    def __init__(
        self,
        settings: BackendSettings,
        mounts: tuple[MountSpec, ...],
        state_dir: Path,
        *,
        metrics: BackendMetrics | None = None,
        mode: policy.ProcessMode | None = None,
        evict_idle: float = 1.0,
        s3: bool = True,
        grace: float = 5.0,
        python: str = sys.executable,
        clock: Callable[[], float] = time.monotonic,
        min_uid: int = 1000,
        min_gid: int = 1000,
        allowed_low_gids: frozenset[int] = frozenset(),
        socket_owner: tuple[int, int] | None = None,
    ) -> None:
        self._settings = settings
        self._mounts = mounts
        self._run_dir = state_dir / "run"
        self._user_state = state_dir / "fileserver"
        self._state_dir = state_dir
        self._metrics = metrics or NoMetrics()
        self._mode = mode or policy.process_mode(os.geteuid(), os.getuid())
        self._evict_idle = evict_idle
        self._s3 = s3
        self._grace = grace
        self._python = python
        self._clock = clock
        self._servers: dict[int, _Server] = {}
        self._generation = 0
        self._spawner: Spawner | None = None
        self._spawner_lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self._task_group: asyncio.TaskGroup | None = None
        self._started: asyncio.Future[None] | None = None
        self._closed = False
        self._helper = policy.HelperPolicy(
            self._run_dir, self._user_state, min_uid, min_gid, allowed_low_gids, socket_owner
        )
        policy.check_socket_path(self._run_dir / "u4294967295-4294967295-s3.sock")
        log.info("local backend %s", self._mode.describe())

    # -- the Backend protocol --------------------------------------------------------------

    async def ensure(self, identity: Identity) -> Upstream:
        if self._closed:
            raise BackendClosed("the backend is shutting down")
        spec = policy.server_spec(identity, self._mounts, self._mode)
        try:
            policy.check_ids(spec.uid, spec.gid, spec.gids, self._helper)
        except policy.SpawnRefused as exc:
            raise IdentityRefused(f"refusing to run a file server: {exc}") from None
        await self.start()
        deadline = self._clock() + self._settings.start_timeout
        while True:
            if self._closed:
                raise BackendClosed("the backend is shutting down")
            entry = self._servers.get(spec.uid)
            if entry is not None and entry.spec != spec:
                log.info("identity of uid %d changed; replacing its file server", spec.uid)
                self._retire(entry, "identity changed")
                entry = None
            if entry is not None:
                break
            wait = self._make_room(deadline)
            if wait == 0:
                entry = self._admit(spec)
                break
            await asyncio.sleep(wait)  # an idle server becomes evictable: then take its place
        entry.last_used = self._clock()
        upstream = await asyncio.shield(entry.ready)
        entry.in_flight += 1
        return upstream

    async def touch(self, identity: Identity) -> None:
        """A request is done (or still moving data): the server was used now."""
        entry = self._servers.get(identity.uid)
        if entry is not None:
            entry.last_used = self._clock()
            entry.in_flight = max(0, entry.in_flight - 1)

    async def report_failure(self, identity: Identity) -> None:
        entry = self._servers.get(identity.uid)
        if entry is None or entry.state != "ready":
            return
        if await readiness.probe(entry.socket, entry.secret, limit=1.0):
            return
        if self._servers.get(identity.uid) is entry:
            self._retire(entry, "unreachable")

    def running(self) -> int:
        return len(self._servers)

    def servers(self) -> list[ServerInfo]:
        """The servers running or starting now, for status pages and logs."""
        now = self._clock()
        return [
            ServerInfo(
                username=e.spec.username,
                uid=uid,
                pid=e.process.pid if e.process else None,
                state="ready" if e.state == "ready" else "starting",
                idle_seconds=now - e.last_used,
            )
            for uid, e in self._servers.items()
        ]

    @property
    def helper_pid(self) -> int | None:
        """The pid of the fork helper, while it runs."""
        return self._spawner.pid if self._spawner and self._spawner.alive else None

    async def aclose(self) -> None:
        self._closed = True
        if self._spawner is not None:
            await self._spawner.aclose()  # the helper stops every server
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for entry in list(self._servers.values()):
            self._forget(entry)
        self._changed()

    async def __aenter__(self) -> LocalBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- start-up --------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the directories, start the reaper and the helper (done by the first
        ``ensure`` when not called before)."""
        if self._spawner is not None and self._spawner.alive:
            return  # the common case, once per request: no lock
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            self._prepare_dirs()
            self._supervisor = asyncio.create_task(self._supervise(self._started))
        await asyncio.shield(self._started)
        await self._get_spawner()

    def _prepare_dirs(self) -> None:
        self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in (self._run_dir, self._user_state):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)
        if self._helper.socket_owner is not None:  # the router's account, once it drops root
            os.chown(self._run_dir, *self._helper.socket_owner, follow_symlinks=False)
        for stale in self._run_dir.glob("u*.sock"):  # from a router that did not shut down
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    async def _supervise(self, started: asyncio.Future[None]) -> None:
        async with asyncio.TaskGroup() as group:
            self._task_group = group
            group.create_task(self._reap_idle())
            started.set_result(None)
            await asyncio.Future()  # until aclose cancels this task

    async def _get_spawner(self) -> Spawner:
        async with self._spawner_lock:
            if self._closed:
                raise BackendClosed("the backend is shutting down")
            if self._spawner is None or not self._spawner.alive:
                if self._spawner is not None:
                    if self._mode.privileged and os.geteuid() != 0:
                        log.error(
                            "the backend helper process exited and this router, no longer "
                            "root, cannot start it again; restart kubepie serve"
                        )
                        raise BackendUnavailable("the backend helper process is gone")
                    log.warning("the backend helper process exited; starting a new one")
                    await self._spawner.aclose()
                spawner = Spawner(self._helper, grace=self._grace, python=self._python)
                await spawner.start()
                assert self._task_group is not None
                self._task_group.create_task(spawner.pump())
                self._spawner = spawner
            return self._spawner

    # -- starting one server ---------------------------------------------------------------

    def _make_room(self, deadline: float) -> float:
        """Seconds to wait before a new server may be admitted (0: now, after evicting the
        least recently used idle server if the table is full); :class:`CapacityExhausted` when
        every server is starting or has a request in flight, or the wait would pass
        ``deadline``. Synchronous, like :meth:`_admit` right after it."""
        if len(self._servers) < self._settings.max_servers:
            return 0.0
        now = self._clock()
        candidates = (
            policy.Candidate(uid, e.last_used, e.state == "ready", busy=e.in_flight > 0)
            for uid, e in self._servers.items()
        )
        choice = policy.eviction(candidates, now, self._evict_idle)
        if choice is None or now + choice[1] > deadline:
            raise CapacityExhausted(
                f"all {self._settings.max_servers} file servers are busy; try again later"
            )
        victim, wait = choice
        if wait > 0:
            return wait
        self._retire(self._servers[victim], "evicted for a new user")
        return 0.0

    def _admit(self, spec: policy.ServerSpec) -> _Server:
        """A starting entry for ``spec`` (synchronous: no other ensure of this uid can slip in
        between the lookup and the insert)."""
        self._generation += 1
        entry = _Server(
            spec=spec,
            socket=self._run_dir / f"u{spec.uid}-{self._generation}.sock",
            s3_socket=self._run_dir / f"u{spec.uid}-{self._generation}-s3.sock"
            if self._s3
            else None,
            secret=secrets.token_urlsafe(32),
            last_used=self._clock(),
            ready=asyncio.get_running_loop().create_future(),
        )
        entry.ready.add_done_callback(_consume)
        self._servers[spec.uid] = entry
        self._changed()
        assert self._task_group is not None
        self._task_group.create_task(self._start_server(entry))
        return entry

    async def _start_server(self, entry: _Server) -> None:
        began = time.monotonic()
        try:
            spawner = await self._get_spawner()
            entry.process = await spawner.spawn(
                policy.fileserver_document(
                    entry.spec, entry.secret, None, self._settings.memory_limit_mb
                ),
                entry.socket,
                entry.s3_socket,
                self._user_state_dir(entry.spec),
                drop=self._mode.privileged,
            )
            entry.process.exited.add_done_callback(lambda f: self._exited(entry, f))
            await readiness.wait_ready(
                entry.socket,
                entry.secret,
                limit=self._settings.start_timeout,
                exited=entry.process.exited,
            )
        except (Exception, asyncio.CancelledError) as exc:  # the task must not end the group
            error: BackendError
            if isinstance(exc, BackendError):
                error = exc
            elif isinstance(exc, asyncio.CancelledError):
                error = BackendClosed("the backend is shutting down")
            else:
                error = StartFailed(f"cannot start: {exc}")
            log.warning(
                "file server for uid %d did not start: %s",
                entry.spec.uid,
                error,
                exc_info=not isinstance(exc, BackendError | OSError | asyncio.CancelledError),
            )
            self._metrics.spawn_finished(time.monotonic() - began, ok=False)
            if not entry.ready.done():
                entry.ready.set_exception(error)
            self._retire(entry, "failed to start")
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        seconds = time.monotonic() - began
        self._metrics.spawn_finished(seconds, ok=True)
        log.info(
            "file server for %s (uid %d) ready in %.0f ms, pid %d",
            entry.spec.username,
            entry.spec.uid,
            seconds * 1000,
            entry.process.pid,
        )
        if entry.state == "retired":  # replaced while it started: a late request still works
            entry.ready.set_result(entry.upstream())
            await self._stop(entry)
            return
        entry.state = "ready"
        entry.ready.set_result(entry.upstream())

    def _user_state_dir(self, spec: policy.ServerSpec) -> Path:
        """``<state_dir>/fileserver/<uid>``: the helper creates it, owned by the user (0700)."""
        return self._user_state / str(spec.uid)

    # -- stopping --------------------------------------------------------------------------

    def _retire(self, entry: _Server, why: str) -> None:
        """Take ``entry`` out of the table and stop its process in the background."""
        was_running = entry.state == "ready"
        self._forget(entry)
        entry.state = "retired"
        if was_running:
            log.info("stopping file server of uid %d (%s)", entry.spec.uid, why)
            if self._task_group is not None and not self._closed:
                self._task_group.create_task(self._stop(entry))
        elif entry.process is not None and self._task_group is not None and not self._closed:
            self._task_group.create_task(self._stop(entry))

    def _forget(self, entry: _Server) -> None:
        if self._servers.get(entry.spec.uid) is entry:
            del self._servers[entry.spec.uid]
            self._changed()

    async def _stop(self, entry: _Server) -> None:
        """SIGTERM, then SIGKILL after the grace period."""
        process, spawner = entry.process, self._spawner
        if process is None or spawner is None:
            return
        for sig, wait in ((signal.SIGTERM, self._grace), (signal.SIGKILL, 5.0)):
            await spawner.signal(process, sig)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await asyncio.shield(process.exited)
                return

    def _exited(self, entry: _Server, exited: asyncio.Future[int | None]) -> None:
        status = exited.result()
        if entry.state == "ready" and not self._closed:
            log.warning(
                "file server of uid %d (pid %s) exited with status %s; the next request "
                "starts a new one",
                entry.spec.uid,
                entry.process.pid if entry.process else "?",
                status,
            )
        self._forget(entry)
        entry.state = "retired"
        for path in (entry.socket, entry.s3_socket):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    async def _reap_idle(self) -> None:
        """Stop servers idle for ``idle_timeout``. A server whose I/O counters moved since the
        last look is busy even without ``touch`` (a long upload or download in progress)."""
        timeout = self._settings.idle_timeout
        interval = max(0.05, min(timeout / 4, 10.0))
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            for entry in list(self._servers.values()):
                if entry.state != "ready" or entry.in_flight > 0:
                    continue  # starting, or a request is still in flight (a long transfer)
                _observe_io(entry, now)
                if policy.idle_expired(entry.last_used, now, timeout):
                    self._retire(entry, f"idle for {timeout:g} s")

    def _changed(self) -> None:
        self._metrics.servers_running(len(self._servers))


def _io_total(pid: int) -> int | None:
    """Bytes ``pid`` has read and written so far (``rchar + wchar`` of ``/proc/<pid>/io``:
    sockets included), or None when they cannot be read."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as stream:
            fields = dict(line.split(": ", 1) for line in stream.read().splitlines())
        return int(fields["rchar"]) + int(fields["wchar"])
    except (OSError, KeyError, ValueError):
        return None


def _observe_io(entry: _Server, now: float) -> None:
    """Count I/O by the server's process since the last look as use at ``now``."""
    if entry.process is None:
        return
    io = _io_total(entry.process.pid)
    if io is not None and entry.io_seen is not None and io != entry.io_seen:
        entry.last_used = now
    entry.io_seen = io


def _consume(future: asyncio.Future[Upstream]) -> None:
    """Retrieve a start failure nobody awaited any more, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
