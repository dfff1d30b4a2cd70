"""The adapter over the ``kubernetes`` client: the only module that imports it.

:class:`KubeApi` speaks JSON objects (plain dicts) to paths of the REST API
(``/api/v1/namespaces/ns/pods/name``, ``/apis/kubepie.io/v1alpha1/...``): get, list, create,
merge-patch (the object or its ``status`` subresource), delete. The client library is
synchronous; each call runs in a worker thread so the event loop never blocks. Its
exceptions become :mod:`kubepie.kube.errors`, carrying the API server's own ``message``.

Credentials come from a kubeconfig file or, inside a pod, from the mounted service-account
token (:func:`connect`). :meth:`KubeApi.connection` hands the same server, CA and token to
kopf (see :mod:`kubepie.operator.kopf_app`), so the operator authenticates once, one way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3

from kubepie.kube.errors import KubeError, Unreachable, error_for

#: Seconds one API request may take (connect + answer) before it counts as unreachable.
REQUEST_TIMEOUT = 30.0
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach the API server: what kopf's login needs (no secret in ``repr``)."""

    server: str
    ca_path: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None
    namespace: str | None

    def __repr__(self) -> str:
        return f"Connection(server={self.server!r}, token=<hidden>)"


def connect(kubeconfig: Path | None, *, context: str | None = None) -> KubeApi:
    """A :class:`KubeApi` from ``kubeconfig``, or from the pod's service account when None.

    Raises :class:`~kubepie.kube.errors.KubeError` naming the file when it cannot be used.
    """
    configuration = kubernetes.client.Configuration()
    namespace: str | None = None
    try:
        if kubeconfig is None:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            _, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                str(kubeconfig)
            )
            namespace = (active.get("context") or {}).get("namespace")
    except (kubernetes.config.ConfigException, OSError, ValueError, KeyError) as exc:
        where = str(kubeconfig) if kubeconfig is not None else "the pod's service account"
        raise KubeError(f"cannot load Kubernetes credentials from {where}: {exc}") from exc
    return KubeApi(configuration, namespace)


class KubeApi:
    """JSON requests to the Kubernetes API (async; each runs in a worker thread)."""

    def __init__(
        self, configuration: kubernetes.client.Configuration, namespace: str | None
    ) -> None:
        self._configuration = configuration
        self._client = kubernetes.client.ApiClient(configuration)
        self.namespace = namespace

    def connection(self) -> Connection:
        """Server, CA and credentials, for a second client (kopf) of the same identity."""
        c = self._configuration
        header = c.get_api_key_with_prefix("BearerToken") or c.get_api_key_with_prefix(
            "authorization"
        )
        token = header.split(" ", 1)[-1] if header else None
        return Connection(
            server=c.host,
            ca_path=c.ssl_ca_cert,
            token=token,
            certificate_path=c.cert_file,
            private_key_path=c.key_file,
            namespace=self.namespace,
        )

    async def get(self, path: str) -> dict[str, Any]:
        return await self._call("GET", path)

    async def list(
        self, path: str, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """The ``items`` of a list request."""
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        answer = await self._call("GET", path, query=query)
        items = answer.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to the collection at ``path``."""
        return await self._call("POST", path, body=body)

    async def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``body`` (with its ``resourceVersion``: a stale one raises Conflict)."""
        return await self._call("PUT", path, body=body)

    async def patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386) of the object (or subresource) at ``path``."""
        return await self._call("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def delete(
        self,
        path: str,
        *,
        uid: str | None = None,
        grace_seconds: int | None = None,
        propagation: str = "Background",
    ) -> dict[str, Any]:
        """Delete the object at ``path`` (only if its uid is still ``uid``, when given)."""
        options: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        return await self._call("DELETE", path, body=options)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self._request, method, path, query, body, content_type)

    def _request(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Mapping[str, Any] | None,
        content_type: str,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            method, url, headers, data, post = self._client.param_serialize(
                method,
                path,
                query_params=list(query),
                header_params=headers,
                body=dict(body) if body is not None else None,
                auth_settings=["BearerToken"],
            )
            answer = self._client.call_api(
                method, url, headers, data, post, _request_timeout=REQUEST_TIMEOUT
            )
            raw = answer.read()  # type: ignore[no-untyped-call]
        except kubernetes.client.ApiException as exc:
            raise Unreachable(f"{method} {path}: {exc.reason}", status=exc.status or 0) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(f"{method} {path}: the API server is unreachable: {exc}") from exc
        status = int(answer.status)
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            decoded = {}
        if not isinstance(decoded, dict):
            decoded = {}
        if not 200 <= status < 300:
            message = str(decoded.get("message") or f"HTTP {status}")
            raise error_for(status, message, str(decoded.get("reason") or ""))
        return decoded


__all__ = ["Connection", "KubeApi", "KubeError", "connect"]
