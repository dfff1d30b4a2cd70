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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import kopf

from identity.models import Identity
from kubepie.admission import review
from kubepie.admission.errors import Refused
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

#: The handler registry, for callers that must not import kopf themselves.
Registry = kopf.OperatorRegistry


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


#: Looks a user up in the directory: the Identity, or None when unknown.
UserLookup = Callable[[str], Awaitable[Identity | None]]


def add_webhook(
    registry: kopf.OperatorRegistry,
    *,
    lookup: UserLookup,
    fileservers: review.Policy,
    hub: review.Policy | None,
    hub_label: tuple[str, str] | None,
) -> None:
    """PieSec: mutate and validate file-server Pods (and Hub Pods when ``hub_label`` is set).
    ``persistent``: the configurations stay when the operator stops, so that with the webhook
    down (failure policy Fail) no such Pod is created."""
    selections: list[tuple[str, dict[str, str], review.Policy]] = [
        ("fileserver", {LABEL_ROLE: ROLE_FILESERVER}, fileservers)
    ]
    if hub is not None and hub_label is not None:
        selections.append(("hub", {hub_label[0]: hub_label[1]}, hub))
    for kind, labels, policy in selections:
        _add_pair(registry, kind, labels, policy, lookup)


def _add_pair(
    registry: kopf.OperatorRegistry,
    kind: str,
    labels: dict[str, str],
    policy: review.Policy,
    lookup: UserLookup,
) -> None:
    @kopf.on.mutate(
        "v1",
        "pods",
        id=f"mutate-{kind}",
        labels=labels,
        operations=["CREATE"],
        persistent=True,
        registry=registry,
    )
    async def mutate(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        try:
            user = await lookup(review.username_of(body, policy))
        except Refused as exc:
            raise kopf.AdmissionError(str(exc), code=403) from exc
        if user is None:
            return  # the validating webhook refuses it, naming the user
        patch.spec["securityContext"] = review.security_patch(user)

    @kopf.on.validate(
        "v1",
        "pods",
        id=f"validate-{kind}",
        labels=labels,
        operations=["CREATE"],
        persistent=True,
        registry=registry,
    )
    async def validate(body: kopf.Body, userinfo: kopf.UserInfo, **_: Any) -> None:
        requester = str(userinfo.get("username", ""))
        try:
            name = review.username_of(body, policy)
            review.check(body, requester, await lookup(name), policy)
        except Refused as exc:
            log.warning("admission refused a %s Pod of %s: %s", kind, requester, exc)
            raise kopf.AdmissionError(str(exc), code=403) from exc


def webhook_server(
    *, listen_host: str, port: int, url_host: str, ca_pem: bytes, cert_file: str, key_file: str
) -> kopf.WebhookServer:
    """kopf's HTTPS webhook server with our certificate; the CA becomes the ``caBundle``."""
    return kopf.WebhookServer(
        addr=listen_host,
        port=port,
        host=url_host,
        cadata=ca_pem,
        certfile=cert_file,
        pkeyfile=key_file,
    )


def enable_admission(
    registry: kopf.OperatorRegistry, server: kopf.WebhookServer, configuration_name: str
) -> None:
    @kopf.on.startup(registry=registry, id="admission")
    def configure_admission(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = server
        settings.admission.managed = configuration_name
