"""Make a FileServer's Secret and Pod exist and its status true; reap idle FileServers.

Every step is idempotent and reads before it writes, so a restarted operator (or a second one
during a rollout) carries on without duplicates: the Secret and the Pod are named after the
FileServer, a create that collides reads the existing object instead, and a Pod is deleted
only with a precondition on its uid. Reconciles of one FileServer never overlap in this
process (one lock per name).

A Pod whose server exited (``restartPolicy: Never``) or that was made for an older spec is
deleted; the next pass (the Pod's deletion event, or the periodic check) creates a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubepie.kube.client import KubeApi
from kubepie.kube.errors import Conflict, NotFound
from kubepie.kube.resources import fileserver_path, object_path
from kubepie.operator import manifests, status

log = logging.getLogger("kubepie.operator")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconcile did: the status before and after (``None``: the FileServer is gone)."""

    before: str | None
    after: str | None
    reason: str
    message: str
    created_pod: bool = False
    replaced_pod: str | None = None
    #: The FileServer as read at the start (what Events are posted about).
    fileserver: Mapping[str, Any] | None = None


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        template: manifests.PodTemplate,
        *,
        idle_timeout: float,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._template = template
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    def _path(self, plural: str, name: str | None = None) -> str:
        return object_path("v1", plural, self._namespace, name)

    async def reconcile(self, name: str) -> Outcome:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                fileserver = await self._api.get(fileserver_path(self._namespace, name))
            except NotFound:
                self._locks.pop(name, None)
                return Outcome(None, None, "Deleted", "the FileServer is gone")
            if fileserver["metadata"].get("deletionTimestamp"):
                return Outcome(None, None, "Deleting", "the FileServer is being deleted")
            return await self._reconcile(fileserver)

    async def _reconcile(self, fileserver: Mapping[str, Any]) -> Outcome:
        name = fileserver["metadata"]["name"]
        generation = int(fileserver["metadata"].get("generation") or 0)
        await self._ensure_secret(fileserver)
        pod = await self._get(self._path("pods", name))
        created = False
        replaced = None
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            made_for = (pod["metadata"].get("annotations") or {}).get(
                "kubepie.io/fileserver-generation"
            )
            finished = status.pod_is_finished(pod)
            if finished and status.finished_for(pod, self._clock()) < status.RESTART_DELAY:
                pass  # reported as Failed; replaced by a later pass
            elif finished or made_for != str(generation):
                replaced = status.report(pod).message or "the spec changed"
                await self._delete_pod(pod)
                pod = await self._get(self._path("pods", name))
        if pod is None:
            pod = await self._create_or_read(
                self._path("pods"),
                manifests.pod_manifest(fileserver, self._template),
                self._path("pods", name),
            )
            created = True
        report = status.report(pod)
        previous = fileserver.get("status") or {}
        new = status.new_status(previous, report, generation, status.timestamp(self._clock()))
        if status.changed(previous, new):
            await self._api.patch(
                f"{fileserver_path(self._namespace, name)}/status", {"status": new}
            )
        return Outcome(
            previous.get("phase"),
            report.phase,
            report.reason,
            report.message,
            created_pod=created,
            replaced_pod=replaced,
            fileserver=fileserver,
        )

    async def _ensure_secret(self, fileserver: Mapping[str, Any]) -> None:
        name = fileserver["metadata"]["name"]
        if await self._get(self._path("secrets", name)) is not None:
            return
        key = secrets.token_urlsafe(32)
        await self._create_or_read(
            self._path("secrets"),
            manifests.secret_manifest(fileserver, key),
            self._path("secrets", name),
        )

    async def _delete_pod(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        # NotFound: gone already; Conflict: already replaced by another reconcile
        with contextlib.suppress(NotFound, Conflict):
            await self._api.delete(self._path("pods", meta["name"]), uid=meta["uid"])

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self._api.get(path)
        except NotFound:
            return None

    async def _create_or_read(
        self, collection: str, body: Mapping[str, Any], path: str
    ) -> dict[str, Any]:
        try:
            return await self._api.create(collection, body)
        except Conflict:
            return await self._api.get(path)

    # -- PieEat -------------------------------------------------------------------------------

    async def reap_if_idle(self, fileserver: Mapping[str, Any]) -> float | None:
        """Delete the FileServer when idle past ``idle_timeout`` (its Secret and Pod follow by
        garbage collection); the idle seconds when it was deleted, else None."""
        idle = status.idle_seconds(fileserver, self._clock())
        if idle < self._idle_timeout:
            return None
        meta = fileserver["metadata"]
        try:
            await self._api.delete(
                fileserver_path(self._namespace, meta["name"]),
                uid=meta["uid"],
                propagation="Foreground",
            )
        except (NotFound, Conflict):
            return None
        log.info("reaped FileServer %s: idle for %.0f s", meta["name"], idle)
        return idle

    async def fileservers(self) -> list[dict[str, Any]]:
        return await self._api.list(fileserver_path(self._namespace))
