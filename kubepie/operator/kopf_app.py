"""The kopf adapter: the only module importing kopf.

:func:`run` runs the operator in the current event loop: kopf watches FileServers and their
Pods in one namespace and calls the :class:`~kubepie.operator.reconcile.Reconciler` on every
change, plus a periodic pass per FileServer (dead Pods, PieEat). It posts an Event on the
FileServer when its phase changes or its Pod is replaced. kopf logs in with the same
credentials as our API client (:meth:`kubepie.kube.client.KubeApi.connection`). No progress or
diff-base is stored on objects: every handler reads the cluster and is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import kopf

from kubepie.kube.client import KubeApi
from kubepie.kube.resources import (
    GROUP,
    LABEL_FILESERVER,
    LABEL_ROLE,
    PLURAL,
    ROLE_FILESERVER,
    VERSION,
)
from kubepie.operator.reconcile import Outcome, Reconciler

log = logging.getLogger("kubepie.operator")


def build_registry(
    api: KubeApi,
    reconciler: Reconciler,
    *,
    namespace: str,
    reconcile_interval: float,
    extra: Callable[[kopf.OperatorRegistry], None] | None = None,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        c = api.connection()
        return kopf.ConnectionInfo(
            server=c.server,
            ca_path=c.ca_path,
            token=c.token,
            scheme="Bearer" if c.token else None,
            certificate_path=c.certificate_path,
            private_key_path=c.private_key_path,
            default_namespace=namespace,
        )

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 60
        settings.watching.client_timeout = 70
        settings.persistence.finalizer = "kubepie.io/operator"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubepie.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="kubepie.io", key="last-handled-configuration"
        )

    async def reconcile(name: str) -> None:
        outcome = await reconciler.reconcile(name)
        if outcome.fileserver is not None:
            _post_events(outcome.fileserver, outcome)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def fileserver_event(name: str, body: kopf.Body, type: str | None, **_: Any) -> None:
        if type == "DELETED":
            return
        await reconcile(name)

    @kopf.on.event("v1", "pods", labels={LABEL_ROLE: ROLE_FILESERVER}, registry=registry)
    async def pod_event(labels: Mapping[str, str], **_: Any) -> None:
        owner = labels.get(LABEL_FILESERVER)
        if owner:
            await reconcile(owner)

    @kopf.timer(GROUP, VERSION, PLURAL, interval=reconcile_interval, registry=registry)
    async def periodic(name: str, body: kopf.Body, **_: Any) -> None:
        if await reconciler.reap_if_idle(body) is not None:
            kopf.info(body, reason="Reaped", message="idle past idle_timeout: deleted")
            return
        await reconcile(name)

    if extra is not None:
        extra(registry)
    return registry


def _post_events(fileserver: Mapping[str, Any], outcome: Outcome) -> None:
    body = cast(kopf.Body, fileserver)  # kopf reads only metadata and apiVersion/kind
    if outcome.after is None:
        return
    if outcome.replaced_pod is not None:
        kopf.warn(body, reason="PodReplaced", message=f"Pod replaced: {outcome.replaced_pod}")
    if outcome.created_pod:
        kopf.info(body, reason="PodCreated", message="created the file-server Pod")
    if outcome.after != outcome.before:
        message = f"{outcome.after}: {outcome.reason}" + (
            f" ({outcome.message})" if outcome.message else ""
        )
        if outcome.after == "Failed":
            kopf.warn(body, reason="Failed", message=message)
        else:
            kopf.info(body, reason=outcome.after, message=message)


async def run(
    registry: kopf.OperatorRegistry,
    *,
    namespace: str,
    stop: asyncio.Event,
) -> None:
    """Run kopf until ``stop`` is set (standalone: no peering objects needed)."""
    stop_flag: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def watch_stop() -> None:
        await stop.wait()
        if not stop_flag.done():
            stop_flag.set_result(None)

    waiter = asyncio.create_task(watch_stop())
    try:
        await kopf.operator(
            registry=registry,
            namespaces=[namespace],
            standalone=True,
            stop_flag=stop_flag,
        )
    finally:
        waiter.cancel()
