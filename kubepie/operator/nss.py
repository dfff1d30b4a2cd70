"""NSS sync: keep a ``passwd``/``group`` ConfigMap in step with the directory.

Every ``nss_interval`` seconds the directory is read (a static file is read again, so edits
count) and both files are rendered (:mod:`identity.nss`); the ConfigMap is written only when
its content differs, so watchers and the kubelet see a change only when there is one. Pods
mount it without ``subPath`` so running ones see updates. A directory that cannot be read or
rendered leaves the ConfigMap as it is (fail closed: never an empty passwd) and is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from identity.directory import Directory
from identity.errors import IdentityError
from identity.nss import render_group, render_passwd
from kubepie.kube.client import KubeApi
from kubepie.kube.errors import Conflict, KubeError, NotFound
from kubepie.kube.resources import object_path

log = logging.getLogger("kubepie.operator")


async def render(directory: Directory) -> dict[str, str]:
    users = await directory.all_users()
    groups = await directory.all_groups()
    return {"passwd": render_passwd(users), "group": render_group(groups)}


async def sync_once(api: KubeApi, namespace: str, name: str, directory: Directory) -> bool:
    """Write the ConfigMap when it differs from the directory; True when it was written."""
    data = await render(directory)
    path = object_path("v1", "configmaps", namespace, name)
    try:
        current = await api.get(path)
    except NotFound:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "labels": {
                    "app.kubernetes.io/name": "kubepie",
                    "app.kubernetes.io/component": "nss",
                },
            },
            "data": data,
        }
        try:
            await api.create(object_path("v1", "configmaps", namespace), body)
        except Conflict:
            return await sync_once(api, namespace, name, directory)
        return True
    if (current.get("data") or {}) == data:
        return False
    await api.patch(path, {"data": data})
    return True


async def keep_in_step(
    api: KubeApi,
    namespace: str,
    name: str,
    directory: Callable[[], Directory],
    interval: float,
) -> None:
    """Run :func:`sync_once` every ``interval`` seconds until cancelled."""
    while True:
        try:
            if await sync_once(api, namespace, name, directory()):
                log.info("NSS ConfigMap %s/%s updated from the directory", namespace, name)
        except (IdentityError, KubeError) as exc:
            log.warning("NSS sync: %s; the ConfigMap is left as it is", exc)
        await asyncio.sleep(interval)
