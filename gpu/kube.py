"""The Kubernetes API adapter (over httpx): the pods of this node, and Events.

* :class:`KubernetesPods` is the :class:`~gpu.workloads.PodDirectory` of the node agent: one
  ``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`` per refresh, turned into
  :class:`~gpu.workloads.PodInfo` by :func:`pod_info` (pure). It needs ``get, list`` on pods.
* :class:`KubernetesEvents` is the enforcer's :class:`~gpu.enforcer.EventSink`: a core/v1
  Event on the pod (:func:`event_body`, pure). It needs ``create`` on events.

In a pod, :func:`in_cluster` reads the service account token on every request (bound tokens
rotate) and trusts the cluster CA. ``httpx`` errors become :class:`KubernetesApiError`.
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import httpx

from gpu.enforcer import EnforcementEvent
from gpu.errors import KubernetesApiError
from gpu.workloads import PodInfo

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
COMPONENT = "kubepie-gpu"


class BearerTokenFile(httpx.Auth):
    """``Authorization: Bearer <token>`` from a file read for every request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.path.read_text().strip()}"
        yield request


def in_cluster(env: Mapping[str, str] = os.environ, timeout_s: float = 10.0) -> httpx.AsyncClient:
    """A client for the API server of the cluster this pod runs in."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise KubernetesApiError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
    if ":" in host:
        host = f"[{host}]"
    return httpx.AsyncClient(
        base_url=f"https://{host}:{port}",
        auth=BearerTokenFile(SERVICE_ACCOUNT / "token"),
        verify=str(SERVICE_ACCOUNT / "ca.crt"),
        timeout=timeout_s,
    )


def pod_info(obj: Mapping[str, Any]) -> PodInfo:
    """A pod object from the API as :class:`PodInfo`: containers by runtime container ID."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    containers: dict[str, str] = {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("containerID"):
                containers[cs["containerID"]] = cs["name"]
    return PodInfo(
        uid=str(meta.get("uid", "")),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        annotations=dict(meta.get("annotations") or {}),
        containers=containers,
    )


async def _call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise KubernetesApiError(f"{method} {url}: {exc}") from exc
    if response.status_code >= 300:
        raise KubernetesApiError(f"{method} {url}: HTTP {response.status_code}")
    return response.json()


class KubernetesPods:
    """The pods scheduled to ``node_name``."""

    def __init__(self, client: httpx.AsyncClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name

    async def pods(self) -> list[PodInfo]:
        data = await _call(
            self.client,
            "GET",
            "/api/v1/pods",
            params={"fieldSelector": f"spec.nodeName={self.node_name}"},
        )
        return [
            pod_info(item)
            for item in data.get("items") or []
            if (item.get("spec") or {}).get("nodeName") == self.node_name
        ]


def event_body(event: EnforcementEvent, node_name: str, now: datetime.datetime) -> dict[str, Any]:
    """A core/v1 Event about ``event``'s container (pure)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{event.pod}.{uuid.uuid4().hex[:16]}",
            "namespace": event.namespace,
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": event.namespace,
            "name": event.pod,
            "uid": event.pod_uid,
            "fieldPath": f"spec.containers{{{event.container}}}",
        },
        "reason": event.reason,
        "message": event.message,
        "type": event.type,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT, "host": node_name},
        "reportingComponent": COMPONENT,
        "reportingInstance": node_name,
    }


class KubernetesEvents:
    """Records enforcement events as Kubernetes Events on the pod."""

    def __init__(self, client: httpx.AsyncClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name

    async def emit(self, event: EnforcementEvent) -> None:
        body = event_body(event, self.node_name, datetime.datetime.now(datetime.UTC))
        await _call(self.client, "POST", f"/api/v1/namespaces/{event.namespace}/events", json=body)
