"""Prometheus metrics read at scrape time: devices, and GPU memory per container.

:class:`GpuCollector` takes a :class:`~gpu.monitor.Monitor` snapshot on every scrape (NVML is
read then; the pod mapping is the monitor's last refresh) and turns it into metric families
with :func:`metric_families` (pure). Bytes throughout, as Prometheus prefers; labels
``namespace, pod, container, device_uuid, gpu_instance_id`` (the latter empty for whole GPUs).
The collector is registered on a registry the caller owns; :func:`serve_metrics` serves that
registry over HTTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpu.errors import NvmlError
from gpu.models import ContainerShares, Snapshot
from gpu.monitor import Monitor

log = logging.getLogger(__name__)

DEVICE_LABELS = ["device_uuid", "gpu_instance_id", "model"]
CONTAINER_LABELS = ["namespace", "pod", "container"]
USAGE_LABELS = [*CONTAINER_LABELS, "device_uuid", "gpu_instance_id"]


def _gi(value: int | None) -> str:
    return "" if value is None else str(value)


def metric_families(snapshot: Snapshot) -> list[Metric]:
    """The metric families for one snapshot (pure)."""
    total = GaugeMetricFamily(
        "kubepie_gpu_device_memory_total_bytes", "Memory of the device", labels=DEVICE_LABELS
    )
    used = GaugeMetricFamily(
        "kubepie_gpu_device_memory_used_bytes", "Memory in use on the device", labels=DEVICE_LABELS
    )
    healthy = GaugeMetricFamily(
        "kubepie_gpu_device_healthy", "1 when NVML answers for the device", labels=DEVICE_LABELS
    )
    util = GaugeMetricFamily(
        "kubepie_gpu_device_utilization_ratio",
        "Fraction of the last sample period a kernel ran (whole GPUs only)",
        labels=DEVICE_LABELS,
    )
    for device in snapshot.devices:
        labels = [device.uuid, _gi(device.gpu_instance_id), device.model]
        total.add_metric(labels, device.memory_total)
        used.add_metric(labels, device.memory_used)
        healthy.add_metric(labels, 1 if device.healthy else 0)
        if device.utilization_gpu is not None:
            util.add_metric(labels, device.utilization_gpu / 100)

    c_used = GaugeMetricFamily(
        "kubepie_gpu_container_memory_used_bytes",
        "GPU memory held by the container's processes on a device",
        labels=USAGE_LABELS,
    )
    c_guarantee = GaugeMetricFamily(
        "kubepie_gpu_container_memory_guarantee_bytes",
        "GPU memory the container requested (its meta-devices)",
        labels=CONTAINER_LABELS,
    )
    c_limit = GaugeMetricFamily(
        "kubepie_gpu_container_memory_limit_bytes",
        "GPU memory above which the container is stopped",
        labels=CONTAINER_LABELS,
    )
    containers: dict[tuple[str, str, str], ContainerShares] = {}
    for usage in snapshot.usage:
        ref = usage.shares.ref
        c_used.add_metric(
            [ref.namespace, ref.pod, ref.container, usage.device_uuid, _gi(usage.gpu_instance_id)],
            usage.used,
        )
        containers[(ref.namespace, ref.pod, ref.container)] = usage.shares
    for names, shares in containers.items():
        c_guarantee.add_metric(list(names), shares.guarantee)
        c_limit.add_metric(list(names), shares.limit)

    unattributed = GaugeMetricFamily(
        "kubepie_gpu_unattributed_memory_bytes",
        "GPU memory held by processes of no known container (system, other pods' leftovers)",
        labels=["device_uuid"],
    )
    per_device: dict[str, int] = {}
    for process in snapshot.unattributed:
        per_device[process.device_uuid] = (
            per_device.get(process.device_uuid, 0) + process.used_memory
        )
    for uuid, value in per_device.items():
        unattributed.add_metric([uuid], value)
    return [total, used, healthy, util, c_used, c_guarantee, c_limit, unattributed]


class GpuCollector(Collector):
    """Reads the monitor at scrape time. NVML failures yield an empty scrape, logged."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterable[Metric]:
        try:
            snapshot = self.monitor.snapshot()
        except NvmlError as exc:
            log.warning("GPU metrics unavailable: %s", exc)
            return []
        return metric_families(snapshot)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families depend on the node; do not collect at registration


def serve_metrics(
    registry: CollectorRegistry, host: str, port: int
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` on ``http://host:port/metrics`` in a daemon thread."""
    return start_http_server(port, addr=host, registry=registry)
