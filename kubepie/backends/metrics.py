"""Prometheus metrics for a backend, registered in a registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Buckets for spawn latency: a forked server is ready in tens of milliseconds; the start
#: timeout is seconds.
SPAWN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusBackendMetrics:
    """:class:`~kubepie.backends.base.BackendMetrics` as three metric families in ``registry``."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "kubepie") -> None:
        self._spawn = Histogram(
            f"{prefix}_backend_spawn_seconds",
            "Seconds from the first request of a user to their file server being ready.",
            buckets=SPAWN_BUCKETS,
            registry=registry,
        )
        self._failed = Counter(
            f"{prefix}_backend_spawn_failures",
            "File-server starts that failed or timed out.",
            registry=registry,
        )
        self._running = Gauge(
            f"{prefix}_backend_servers_running",
            "Per-user file servers running or starting.",
            registry=registry,
        )

    def spawn_finished(self, seconds: float, *, ok: bool) -> None:
        if ok:
            self._spawn.observe(seconds)
        else:
            self._failed.inc()

    def servers_running(self, count: int) -> None:
        self._running.set(count)
