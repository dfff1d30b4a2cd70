"""Assemble and run the operator: API client, reconciler, kopf handlers (and, when enabled,
the admission webhook and the NSS sync) in one event loop, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from identity.directory import Directory
from identity.models import Identity
from kubepie.admission.review import Policy
from kubepie.kube.client import connect
from kubepie.operator import kopf_app, nss
from kubepie.operator.certs import make_serving_certificate
from kubepie.operator.errors import ConfigurationError
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
    if settings.webhook.enabled:
        _add_admission(registry, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("operator for FileServers in namespace %s", settings.namespace)
    try:
        async with asyncio.TaskGroup() as group:
            if settings.nss_configmap:
                nss_task = group.create_task(
                    nss.keep_in_step(
                        api,
                        settings.namespace,
                        settings.nss_configmap,
                        lambda: directory(settings),
                        settings.nss_interval,
                    )
                )
            await kopf_app.run(registry, namespace=settings.namespace, stop=stop)
            if settings.nss_configmap:
                nss_task.cancel()
    finally:
        await api.aclose()


def directory(settings: OperatorSettings) -> Directory:
    """The directory the webhook and the NSS sync read (``static`` or ``ldap``)."""
    ident = settings.identity
    if ident.source == "static" and ident.static_file is not None:
        from identity.static import StaticDirectory

        return StaticDirectory.load(ident.static_file)
    if ident.source == "ldap" and ident.ldap is not None:
        from identity.ldap import LdapDirectory

        return LdapDirectory(ident.ldap.directory_settings())
    raise ConfigurationError("identity: the operator needs a static or ldap directory")


def user_lookup(source: Directory) -> kopf_app.UserLookup:
    async def lookup(username: str) -> Identity | None:
        user = await source.lookup_user(username)
        if user is None:
            return None
        groups = await source.groups_for(user)
        return Identity(
            issuer="directory",
            sub=user.username,
            username=user.username,
            uid=user.uid,
            gid=user.gid,
            gids=tuple(g.gid for g in groups),
            groups=tuple(g.name for g in groups),
        )

    return lookup


def _add_admission(registry: kopf_app.Registry, settings: OperatorSettings) -> None:
    hook = settings.webhook
    mounts = tuple(m.to_spec() for m in settings.mounts)
    fileservers = Policy(
        min_uid=settings.min_uid,
        creators=frozenset(hook.operator_users),
        username_label=hook.username_label,
        mounts=mounts,
    )
    hub = None
    hub_label = None
    if hook.hub_label:
        key, _, value = hook.hub_label.partition("=")
        hub_label = (key, value)
        hub = Policy(
            min_uid=settings.min_uid,
            creators=frozenset(hook.hub_users),
            username_label=hook.username_label,
            mounts=mounts,
        )
    kopf_app.add_webhook(
        registry,
        lookup=user_lookup(directory(settings)),
        fileservers=fileservers,
        hub=hub,
        hub_label=hub_label,
    )
    files = make_serving_certificate(hook.cert_dir, hook.url_host)
    server = kopf_app.webhook_server(
        listen_host=hook.listen_host,
        port=hook.port,
        url_host=hook.url_host,
        ca_pem=files.ca_pem,
        cert_file=str(files.cert_file),
        key_file=str(files.key_file),
    )
    kopf_app.enable_admission(registry, server, hook.configuration_name)
