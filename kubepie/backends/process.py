"""The router's side of the fork server (:mod:`kubepie.backends.zygote`).

:class:`Spawner` starts the helper process, sends it spawn and signal requests, and routes the
events it reports (a child spawned, a child exited) to :class:`ChildProcess` futures. Signals go
through the helper, which only signals children it has not reaped yet, so a reused pid is never
hit. When the helper ends, every child it had is reported gone (the children themselves get
SIGTERM from the kernel when the helper dies: see the zygote's ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubepie.backends.errors import BackendUnavailable, StartFailed
from kubepie.backends.policy import HelperPolicy, helper_environment

log = logging.getLogger("kubepie.backends")

#: Seconds the helper has to import the file server and say it is ready.
HELPER_START_TIMEOUT = 30.0


@dataclass(eq=False)
class ChildProcess:
    """One forked file server: ``exited`` resolves with its exit status (negative: killed by
    that signal; None: the helper went away, taking the child with it)."""

    pid: int
    exited: asyncio.Future[int | None] = field(repr=False)


class Spawner:
    """One helper process and the children it forked."""

    def __init__(
        self, helper: HelperPolicy, *, grace: float = 5.0, python: str = sys.executable
    ) -> None:
        self._helper = helper
        self._grace = grace
        self._python = python
        self._proc: asyncio.subprocess.Process | None = None
        self._requests = 0
        self._pending: dict[int, asyncio.Future[ChildProcess]] = {}
        self._children: dict[int, ChildProcess] = {}
        self._alive = False
        self.pid = 0

    @property
    def alive(self) -> bool:
        return self._alive

    async def start(self) -> None:
        """Start the helper and wait until it has imported the file server."""
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "kubepie.backends.zygote",
                f"--grace={self._grace}",
                *self._helper.to_args(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd="/",
                env=helper_environment(os.environ),  # never the router's secrets
                start_new_session=True,  # terminal signals go to the router, not to servers
            )
        except OSError as exc:
            raise BackendUnavailable(f"cannot start the backend helper: {exc}") from exc
        assert self._proc.stdout is not None
        try:
            async with asyncio.timeout(HELPER_START_TIMEOUT):
                line = await self._proc.stdout.readline()
        except TimeoutError:
            line = b""
        message = _parse(line)
        if message.get("op") != "ready":
            await self.aclose()
            raise BackendUnavailable("the backend helper did not start (see its log)")
        self.pid = int(message["pid"])
        self._alive = True

    async def pump(self) -> None:
        """Route the helper's events until it exits; run this as a background task."""
        assert self._proc is not None
        assert self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                try:
                    self._dispatch(_parse(line))
                except (KeyError, TypeError, ValueError):
                    log.error("ignoring a malformed message from the backend helper")
        finally:
            self._alive = False
            gone = StartFailed("the backend helper process exited")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(gone)
            self._pending.clear()
            for child in self._children.values():
                if not child.exited.done():
                    child.exited.set_result(None)
            self._children.clear()

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op in ("spawned", "failed"):
            future = self._pending.pop(int(message.get("id") or 0), None)
            if future is None or future.done():
                return
            if op == "spawned":
                # Registered here, before any later "exited" event of the same child is read.
                pid = int(message["pid"])
                child = ChildProcess(pid, future.get_loop().create_future())
                self._children[pid] = child
                future.set_result(child)
            else:
                future.set_exception(StartFailed(f"cannot start: {message.get('error')}"))
        elif op == "exited":
            gone = self._children.pop(int(message["pid"]), None)
            if gone is not None and not gone.exited.done():
                status = message.get("status")
                gone.exited.set_result(status if isinstance(status, int) else None)

    async def _send(self, message: dict[str, Any]) -> None:
        if not self._alive or self._proc is None or self._proc.stdin is None:
            raise StartFailed("the backend helper process is not running")
        try:
            self._proc.stdin.write((json.dumps(message) + "\n").encode())
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._alive = False
            raise StartFailed("the backend helper process is gone") from exc

    async def spawn(
        self,
        document: dict[str, Any],
        socket_path: Path,
        s3_socket_path: Path | None,
        state_dir: Path | None,
        *,
        drop: bool,
    ) -> ChildProcess:
        """Fork a file server for ``document`` listening on ``socket_path`` (WebDAV) and
        ``s3_socket_path`` (S3, unless None)."""
        self._requests += 1
        request_id = self._requests
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[ChildProcess] = loop.create_future()
        self._pending[request_id] = reply
        await self._send(
            {
                "op": "spawn",
                "id": request_id,
                "document": document,
                "listen": str(socket_path),
                "s3_listen": None if s3_socket_path is None else str(s3_socket_path),
                "state_dir": None if state_dir is None else str(state_dir),
                "drop": drop,
            }
        )
        return await reply

    async def signal(self, child: ChildProcess, sig: signal.Signals) -> None:
        """Send ``sig`` to ``child`` unless it has already exited."""
        if child.exited.done():
            return
        with contextlib.suppress(StartFailed):
            await self._send({"op": "signal", "pid": child.pid, "signal": int(sig)})

    async def aclose(self) -> None:
        """End the helper: it stops every child (SIGTERM, SIGKILL after the grace) and exits."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(OSError):
                await proc.stdin.wait_closed()
        try:
            async with asyncio.timeout(self._grace + 10):
                await proc.wait()
        except TimeoutError:
            log.error("backend helper %d did not stop; killing it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._alive = False


def _parse(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}
