"""Assemble and run the operator: API client, reconciler, kopf handlers (and, when enabled,
the admission webhook and the NSS sync) in one event loop, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from kubepie.kube.client import connect
from kubepie.operator import kopf_app
from kubepie.operator.manifests import PodTemplate
from kubepie.operator.reconcile import Reconciler
from kubepie.operator.settings import OperatorSettings

log = logging.getLogger("kubepie.operator")


def pod_template(settings: OperatorSettings) -> PodTemplate:
    pod = settings.pod
    return PodTemplate(
        image=pod.image,
        image_pull_policy=pod.image_pull_policy,
        command=pod.command,
        resources=pod.resources,
        node_selector=pod.node_selector,
    )


async def serve(settings: OperatorSettings) -> None:
    api = connect(settings.kubeconfig)
    reconciler = Reconciler(
        api, settings.namespace, pod_template(settings), idle_timeout=settings.idle_timeout
    )
    registry = kopf_app.build_registry(
        api,
        reconciler,
        namespace=settings.namespace,
        reconcile_interval=settings.reconcile_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("operator for FileServers in namespace %s", settings.namespace)
    try:
        await kopf_app.run(registry, namespace=settings.namespace, stop=stop)
    finally:
        await api.aclose()
