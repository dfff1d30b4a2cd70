"""The fork server: a pre-imported helper process that forks one file server per request.

Started by :class:`kubepie.backends.process.Spawner` as ``python -m kubepie.backends.zygote``
with the router's ids. It imports the file server once, freezes the garbage collector's view of
those objects (so forked children keep sharing their pages), and then forks. A child never
``exec``\\ s: the interpreter may live where the user cannot read (see
:mod:`kubepie.fileserver.privileges`), and a fork costs milliseconds where a fresh interpreter
costs a second. Being single-threaded, this process is safe to fork, unlike the router.

It is the privileged half of the router: started as root, it stays root while the router
drops to its own account (``router_user``) and keeps talking to it over the pipes. So it trusts
no request: each spawn must pass :func:`kubepie.backends.policy.check_spawn` against the
:class:`~kubepie.backends.policy.HelperPolicy` fixed on its command line (a regular account's
uid and gids, never root; sockets in the run directory; the state directory of that uid; a
drop whenever the helper is root), and only SIGTERM or SIGKILL to its own children is sent.

For each spawn the helper binds the unix sockets (WebDAV, and S3 when asked; mode 0600, given
to the router's account, in the router's private 0700 directory: only the router can connect),
creates and opens the user's state directory (0700, the user's); the child then applies the
memory ceiling, drops to the user (when the helper is root), reaches the state directory
through ``/proc/self/fd`` (its path stays private), leaves out mounts whose directory does not
exist, asks for SIGTERM when the helper dies, and serves.

Protocol: JSON lines. Requests on stdin::

    {"op": "spawn", "id": N, "document": {...}, "listen": PATH, "s3_listen": PATH|null,
     "state_dir": PATH|null, "drop": BOOL}
    {"op": "signal", "pid": PID, "signal": SIG}

Replies and events on stdout: ``{"op": "ready", "pid": PID}`` once, ``{"op": "spawned",
"id": N, "pid": PID}`` or ``{"op": "failed", "id": N, "error": TEXT}``, and ``{"op": "exited",
"pid": PID, "status": CODE}`` (negative: killed by that signal). EOF on stdin (the router
closed or died) or SIGTERM: every child gets SIGTERM, then SIGKILL after ``--grace`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import uvloop

from kubepie.backends.policy import HelperPolicy, SpawnRefused, SpawnRequest, check_spawn
from kubepie.fileserver import launch, server
from kubepie.fileserver.limits import apply_memory_limit
from kubepie.fileserver.privileges import drop_privileges
from kubepie.fileserver.settings import (
    FileServerSettings,
    SettingsError,
    UnixAddress,
    backend_settings,
)

_PR_SET_PDEATHSIG = 1
#: Exit status of a child that failed before serving (as in ``privileges.run_dropped``).
CHILD_FAILED = 70


def _log(message: str) -> None:
    print(f"kubepie backend helper: {message}", file=sys.stderr, flush=True)


class Zygote:
    """The helper's state: its children, and the pipes to the router."""

    def __init__(self, grace: float, helper: HelperPolicy) -> None:
        self.grace = grace
        self.helper = helper
        self.children: set[int] = set()
        self.buffer = b""
        self.closing = False

    # -- replies ---------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            os.write(1, data)
        except BrokenPipeError:
            self.closing = True

    # -- requests --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
            except ValueError:
                request = None
            if not isinstance(request, dict):
                _log("ignoring a malformed request")
                continue
            self.handle(request)

    def handle(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "spawn":
            reply_id = request.get("id") if isinstance(request.get("id"), int) else None
            try:
                spawn = check_spawn(request, self.helper, root=os.geteuid() == 0)
                child = self.spawn(spawn)
            except SpawnRefused as exc:
                _log(f"refused a spawn request: {exc}")
                self.send({"op": "failed", "id": reply_id, "error": f"refused: {exc}"})
            except (SettingsError, OSError, KeyError, TypeError, ValueError) as exc:
                self.send({"op": "failed", "id": reply_id, "error": str(exc)})
            else:
                self.send({"op": "spawned", "id": spawn.id, "pid": child})
        elif op == "signal":
            target, sig = request.get("pid"), request.get("signal")
            if (
                type(target) is int
                and target in self.children
                and sig in (signal.SIGTERM, signal.SIGKILL)
                and set(request) == {"op", "pid", "signal"}
            ):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, sig)  # only a child not yet reaped: never a reused pid
            else:
                _log("ignoring a malformed signal request")
        else:
            _log(f"ignoring unknown request {str(op)[:40]!r}")

    def spawn(self, request: SpawnRequest) -> int:
        settings = backend_settings(
            request.document,
            listen=UnixAddress(request.listen),
            s3_listen=UnixAddress(request.s3_listen) if request.s3_listen else None,
        )
        socks: list[socket.socket] = []
        state_fd = -1
        try:
            socks.append(server.bind(settings.listen))
            if settings.s3_listen is not None:
                socks.append(server.bind(settings.s3_listen))
            owner = self.helper.socket_owner
            if owner is not None:
                for path in (request.listen, request.s3_listen):
                    if path is not None:
                        os.chown(path, *owner, follow_symlinks=False)
            if request.state_dir is not None:
                state_fd = self._state_dir(request)
            pid = os.fork()
            if pid == 0:  # pragma: no cover (runs in the child, which never returns)
                status = CHILD_FAILED
                try:
                    status = _child(settings, socks, state_fd, request.drop)
                except BaseException:
                    traceback.print_exc(file=sys.stderr)
                finally:
                    sys.stderr.flush()
                    os._exit(status)
        finally:
            for sock in socks:
                sock.close()
            if state_fd >= 0:
                os.close(state_fd)
        self.children.add(pid)
        return pid

    def _state_dir(self, request: SpawnRequest) -> int:
        """Create ``<state_root>/<uid>`` (0700, the user's when root) and open it."""
        assert request.state_dir is not None
        self.helper.state_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        request.state_dir.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(request.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.geteuid() == 0:
                os.fchown(fd, request.uid, request.gid)
            os.fchmod(fd, 0o700)
        except OSError:
            os.close(fd)
            raise
        return fd

    # -- children --------------------------------------------------------------------------

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send({"op": "exited", "pid": pid, "status": os.waitstatus_to_exitcode(status)})

    def stop_children(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.children.discard(pid)
            self.send({"op": "exited", "pid": pid, "status": os.waitstatus_to_exitcode(status)})

    # -- main loop -------------------------------------------------------------------------

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._terminate)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        selector = selectors.DefaultSelector()
        selector.register(0, selectors.EVENT_READ, "requests")
        selector.register(wake_r, selectors.EVENT_READ, "wakeup")
        gc.freeze()  # everything imported so far stays shared with the children
        self.send({"op": "ready", "pid": os.getpid()})
        while not self.closing:
            for key, _ in selector.select(timeout=1.0):
                if key.data == "wakeup":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                    continue
                data = os.read(0, 65536)
                if not data:
                    self.closing = True
                    break
                self.feed(data)
            self.reap()
        self.stop_children()

    def _terminate(self, signum: int, frame: object) -> None:
        self.closing = True


def _close_inherited(keep: set[int]) -> None:
    """Close the helper's descriptors (pipes to the router, selector) in a child."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _present(settings: FileServerSettings) -> FileServerSettings:
    """``settings`` without the mounts whose directory does not exist (checked as the user)."""
    kept = []
    for mount in settings.mounts:
        try:
            os.stat(mount.path)
        except FileNotFoundError:
            print(
                f"kubepie fileserver ({settings.username}): mount {mount.name!r}: "
                f"{mount.path} does not exist; left out",
                file=sys.stderr,
                flush=True,
            )
            continue
        except OSError:
            pass  # exists but is not ours to see: the kernel answers each request (403)
        kept.append(mount)
    return dataclasses.replace(settings, mounts=tuple(kept))


def _child(
    settings: FileServerSettings, socks: list[socket.socket], state_fd: int, drop: bool
) -> int:
    """In the forked child: drop, prepare, serve until SIGTERM. Returns the exit status."""
    helper = os.getppid()
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    _close_inherited({*(sock.fileno() for sock in socks), state_fd})
    apply_memory_limit(settings.memory_limit_mb)  # as root: the user cannot raise it again
    if drop and settings.run_as is not None:
        drop_privileges(settings.run_as)
    # After the drop (a credential change clears it): end with the helper, never outlive it.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != helper:
        return CHILD_FAILED
    state = Path(f"/proc/self/fd/{state_fd}") if state_fd >= 0 else None
    settings = dataclasses.replace(_present(settings), run_as=None, state_dir=state)
    dav, s3 = server.build_apps(settings, launch.make_s3_app)
    listeners = [server.Listener(dav, socks[0])]
    if s3 is not None:
        listeners.append(server.Listener(s3, socks[1]))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(server.serve(listeners))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubepie.backends.zygote")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds from SIGTERM to KILL")
    parser.add_argument("--run-dir", required=True, help="the only directory for sockets")
    parser.add_argument("--state-root", required=True, help="parent of users' state dirs")
    parser.add_argument("--min-uid", type=int, default=1000, help="lowest uid to serve")
    parser.add_argument("--min-gid", type=int, default=1000, help="lowest gid to serve with")
    parser.add_argument(
        "--allow-low-gid", type=int, action="append", default=[], help="a gid below it, allowed"
    )
    parser.add_argument("--socket-owner", help="UID:GID given the sockets (the router's)")
    args = parser.parse_args(argv)
    helper = HelperPolicy.from_args(
        args.run_dir,
        args.state_root,
        args.min_uid,
        args.min_gid,
        args.allow_low_gid,
        args.socket_owner,
    )
    Zygote(args.grace, helper).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
