"""The fork server: a pre-imported helper process that forks one file server per request.

Started by :class:`kubepie.backends.process.Spawner` as ``python -m kubepie.backends.zygote``
with the router's ids. It imports the file server once, freezes the garbage collector's view of
those objects (so forked children keep sharing their pages), and then forks. A child never
``exec``\\ s: the interpreter may live where the user cannot read (see
:mod:`kubepie.fileserver.privileges`), and a fork costs milliseconds where a fresh interpreter
costs a second. Being single-threaded, this process is safe to fork, unlike the router.

For each spawn the helper, still with the router's ids, binds the unix sockets (WebDAV, and S3
when asked; mode 0600 in the router's private 0700 directory: only the router can connect) and
opens the user's state directory; the child then drops to the user (when the helper is root),
reaches the state directory through ``/proc/self/fd`` (its path stays private), leaves out
mounts whose directory does not exist, asks for SIGTERM when the helper dies, and serves.

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

from kubepie.fileserver import launch, server
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

    def __init__(self, grace: float) -> None:
        self.grace = grace
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
                _log("ignoring a malformed request")
                continue
            self.handle(request)

    def handle(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "spawn":
            try:
                child = self.spawn(request)
            except (SettingsError, OSError, KeyError, TypeError, ValueError) as exc:
                self.send({"op": "failed", "id": request.get("id"), "error": str(exc)})
            else:
                self.send({"op": "spawned", "id": request.get("id"), "pid": child})
        elif op == "signal":
            target, sig = request.get("pid"), request.get("signal")
            if isinstance(target, int) and target in self.children and isinstance(sig, int):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, sig)  # only a child not yet reaped: never a reused pid
        else:
            _log(f"ignoring unknown request {op!r}")

    def spawn(self, request: dict[str, Any]) -> int:
        s3_listen = request.get("s3_listen")
        settings = backend_settings(
            request["document"],
            listen=UnixAddress(Path(request["listen"])),
            s3_listen=UnixAddress(Path(s3_listen)) if s3_listen else None,
        )
        state_dir = request.get("state_dir")
        socks: list[socket.socket] = []
        state_fd = -1
        try:
            socks.append(server.bind(settings.listen))
            if settings.s3_listen is not None:
                socks.append(server.bind(settings.s3_listen))
            if state_dir is not None:
                state_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:  # pragma: no cover (runs in the child, which never returns)
                status = CHILD_FAILED
                try:
                    status = _child(settings, socks, state_fd, bool(request.get("drop")))
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
    args = parser.parse_args(argv)
    Zygote(args.grace).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
