"""The kubernetes backend: each user's file server is a ``FileServer`` resource, turned into a
Pod by ``kubepie operator`` (see :mod:`kubepie.operator`).

* **ensure** gets or creates the user's FileServer, named from the user
  (:func:`~kubepie.kube.resources.fileserver_name`): concurrent requests of one user share one
  attempt (single flight), and two routers racing collide on the name, the loser reading the
  winner's object (Conflict → read), so there is never a second server. A changed identity
  (ids, groups, mounts) patches the spec; the operator then replaces the Pod. It waits for the
  status to be Ready for the current spec within ``backend.start_timeout``, reads the
  per-server key from the FileServer's Secret, and returns the Pod's address. ``Failed`` is
  answered at once with the operator's reason (503).
* **touch** reports activity as ``status.lastActivity``, at most once per
  ``activity_interval``; the operator deletes FileServers idle past its ``idle_timeout``.
* **report_failure** forgets the cached address; the next ensure reads the status again.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from identity.models import Identity
from identity.storage import MountSpec, resolve_mounts
from kubepie.backends.base import BackendMetrics, NoMetrics, Upstream
from kubepie.backends.errors import (
    BackendClosed,
    BackendUnavailable,
    IdentityRefused,
    StartFailed,
    StartTimeout,
)
from kubepie.kube.client import KubeApi
from kubepie.kube.errors import Conflict, KubeError, NotFound
from kubepie.kube.resources import (
    fileserver_name,
    fileserver_object,
    fileserver_path,
    fileserver_spec,
    object_path,
    read_state,
)
from kubepie.operator.manifests import secret_key
from kubepie.settings.models import BackendSettings

log = logging.getLogger("kubepie.backends")

#: Seconds between two reads of a starting FileServer's status.
POLL_INTERVAL = 0.1


@dataclass
class _Entry:
    spec: dict[str, Any]
    upstream: Upstream
    reported: float


class KubernetesBackend:
    """A :class:`~kubepie.backends.base.Backend` of FileServer resources."""

    def __init__(
        self,
        settings: BackendSettings,
        mounts: tuple[MountSpec, ...],
        api: KubeApi,
        *,
        min_uid: int = 1000,
        metrics: BackendMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._namespace = settings.kubernetes.namespace
        self._interval = settings.kubernetes.activity_interval
        self._mounts = mounts
        self._api = api
        self._min_uid = min_uid
        self._metrics = metrics or NoMetrics()
        self._clock = clock
        self._ready: dict[str, _Entry] = {}
        self._starting: dict[str, asyncio.Future[Upstream]] = {}
        self._closed = False

    async def start(self) -> None:
        return None

    def _spec(self, identity: Identity) -> dict[str, Any]:
        if identity.uid == 0 or identity.gid == 0 or 0 in identity.gids:
            raise IdentityRefused("refusing to run a file server as uid 0, gid 0 or group 0")
        if identity.uid < self._min_uid or identity.gid < self._min_uid:
            raise IdentityRefused(f"uid and gid must be at least {self._min_uid}")
        return fileserver_spec(identity, resolve_mounts(self._mounts, identity))

    async def ensure(self, identity: Identity) -> Upstream:
        if self._closed:
            raise BackendClosed("the backend is shutting down")
        spec = self._spec(identity)
        name = fileserver_name(identity.username)
        entry = self._ready.get(name)
        if entry is not None and entry.spec == spec:
            return entry.upstream
        starting = self._starting.get(name)
        if starting is None:
            starting = asyncio.ensure_future(self._start(name, spec))
            self._starting[name] = starting
            starting.add_done_callback(lambda _: self._starting.pop(name, None))
        return await asyncio.shield(starting)

    async def _start(self, name: str, spec: dict[str, Any]) -> Upstream:
        began = time.monotonic()
        try:
            upstream = await self._bring_up(name, spec)
        except BaseException:
            self._metrics.spawn_finished(time.monotonic() - began, ok=False)
            raise
        self._metrics.spawn_finished(time.monotonic() - began, ok=True)
        self._ready[name] = _Entry(spec, upstream, self._clock())
        self._metrics.servers_running(len(self._ready))
        return upstream

    async def _bring_up(self, name: str, spec: dict[str, Any]) -> Upstream:
        path = fileserver_path(self._namespace, name)
        deadline = time.monotonic() + self._settings.start_timeout
        try:
            fileserver = await self._get_or_create(name, spec, deadline)
            if fileserver["spec"] != spec:
                log.info("identity of %s changed; updating its FileServer", spec["username"])
                fileserver = await self._api.patch(path, {"spec": spec})
            generation = fileserver["metadata"].get("generation")
            while True:
                state = read_state(fileserver)
                if state.ready and state.address is not None:
                    break
                if state.phase == "Failed" and state.current:
                    raise StartFailed(
                        f"the file server could not start: {state.reason}"
                        + (f": {_message(fileserver)}" if _message(fileserver) else "")
                    )
                if time.monotonic() >= deadline:
                    raise StartTimeout(
                        f"the file server was not ready within {self._settings.start_timeout:g}"
                        f" s (phase {state.phase or 'unknown'}: {state.reason or 'no status'})"
                    )
                await asyncio.sleep(POLL_INTERVAL)
                fileserver = await self._api.get(path)
                if fileserver["metadata"].get("generation") != generation:
                    generation = fileserver["metadata"].get("generation")
            secret = await self._api.get(object_path("v1", "secrets", self._namespace, name))
        except NotFound as exc:
            raise BackendUnavailable(f"the file server went away while starting: {exc}") from exc
        except KubeError as exc:
            raise BackendUnavailable(f"the Kubernetes API refused: {exc.message}") from exc
        key = secret_key(secret)
        if key is None:
            raise BackendUnavailable(f"the Secret of {name} holds no per-server key")
        return Upstream(state.address, key, state.s3_address)

    async def _get_or_create(
        self, name: str, spec: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        path = fileserver_path(self._namespace, name)
        while True:
            try:
                found = await self._api.get(path)
            except NotFound:
                body = fileserver_object(name, spec)
                body["status"] = {}
                try:
                    created = await self._api.create(fileserver_path(self._namespace), body)
                except Conflict:
                    continue  # another router (or request) made it: read theirs
                await self._report(name)
                return created
            if not found["metadata"].get("deletionTimestamp"):
                return found
            if time.monotonic() >= deadline:  # being reaped: wait until it is gone
                raise StartTimeout("the previous file server is still being removed")
            await asyncio.sleep(POLL_INTERVAL)

    async def touch(self, identity: Identity) -> None:
        name = fileserver_name(identity.username)
        entry = self._ready.get(name)
        if entry is None or self._clock() - entry.reported < self._interval:
            return
        entry.reported = self._clock()
        try:
            await self._report(name)
        except KubeError as exc:
            log.warning("could not report activity of %s: %s", name, exc.message)

    async def _report(self, name: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self._api.patch(
            f"{fileserver_path(self._namespace, name)}/status", {"status": {"lastActivity": now}}
        )

    async def report_failure(self, identity: Identity) -> None:
        if self._ready.pop(fileserver_name(identity.username), None) is not None:
            self._metrics.servers_running(len(self._ready))

    def running(self) -> int:
        return len(self._ready)

    async def aclose(self) -> None:
        self._closed = True
        for future in list(self._starting.values()):
            future.cancel()
        await self._api.aclose()


def _message(fileserver: Mapping[str, Any]) -> str:
    return str((fileserver.get("status") or {}).get("message") or "")
