"""Prometheus metrics of the router, registered in an injected registry (none at import).

* ``kubepie_requests_total{listener, method, status}``
* ``kubepie_request_bytes_total{listener, direction}`` (``in``: request bodies, ``out``:
  response bodies)
* ``kubepie_request_duration_seconds{listener}`` (histogram)
* ``kubepie_servers_running`` (read from the backend at scrape time)
* ``kubepie_spawn_seconds`` (histogram: time ``ensure`` took when it started a server, as seen
  by the first request)
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATIONS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
_SPAWNS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry, running: Callable[[], int]) -> None:
        self.registry = registry
        self.requests = Counter(
            "kubepie_requests",
            "Requests answered, by listener, method and status.",
            ("listener", "method", "status"),
            registry=registry,
        )
        self.bytes = Counter(
            "kubepie_request_bytes",
            "Body bytes transferred, by listener and direction (in: uploads, out: downloads).",
            ("listener", "direction"),
            registry=registry,
        )
        self.duration = Histogram(
            "kubepie_request_duration_seconds",
            "Request durations, by listener.",
            ("listener",),
            buckets=_DURATIONS,
            registry=registry,
        )
        self.servers = Gauge(
            "kubepie_servers_running", "Per-user file servers running.", registry=registry
        )
        self.servers.set_function(lambda: float(running()))
        self.spawn = Histogram(
            "kubepie_spawn_seconds",
            "Seconds a request waited for its user's server to become ready.",
            buckets=_SPAWNS,
            registry=registry,
        )

    def observe(
        self, listener: str, method: str, status: int, bytes_in: int, bytes_out: int, took: float
    ) -> None:
        self.requests.labels(listener, method, str(status)).inc()
        if bytes_in:
            self.bytes.labels(listener, "in").inc(bytes_in)
        if bytes_out:
            self.bytes.labels(listener, "out").inc(bytes_out)
        self.duration.labels(listener).observe(took)
