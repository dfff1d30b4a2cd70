"""Stop containers that stay over their GPU memory limit.

Each tick the enforcer sums a container's GPU memory over all its processes and devices and
compares it with the container's limit (annotation ``gpu-mem-limit.<resource>``, else its
request). A container over its limit for longer than the grace period gets SIGTERM on every
one of its GPU processes; if it is still over ``term_timeout_s`` later, SIGKILL. Every step
records an event (a Kubernetes Event in the cluster, see :mod:`gpu.kube`) and counts in
``kubepie_gpu_enforcer_actions_total``. In dry-run mode the events and the metric say what
would have happened, and nothing is signalled.

:func:`plan` is the pure state machine; :class:`Enforcer` applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

from gpu.config import EnforcerSettings
from gpu.models import MIB, ContainerShares, Snapshot
from gpu.monitor import Monitor
from gpu.workloads import ContainerKey

log = logging.getLogger(__name__)

Step = Literal["term", "kill"]


@dataclass(frozen=True)
class Overuse:
    """A container over its limit right now."""

    shares: ContainerShares
    used: int
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Tracked:
    """How long a container has been over its limit, and what was done about it."""

    since: float
    termed_at: float | None = None
    killed_at: float | None = None


@dataclass(frozen=True)
class Action:
    step: Step
    overuse: Overuse
    over_for_s: float


@dataclass(frozen=True)
class EnforcementEvent:
    """What a Kubernetes Event about a container should say."""

    namespace: str
    pod: str
    pod_uid: str
    container: str
    reason: str
    message: str
    type: str = "Warning"


class EventSink(Protocol):
    async def emit(self, event: EnforcementEvent) -> None: ...


@dataclass
class RecordingEventSink:
    """Keeps events in memory (for ``scripts/gpu-check`` and nodes without an API server)."""

    events: list[EnforcementEvent] = field(default_factory=list)

    async def emit(self, event: EnforcementEvent) -> None:
        log.warning("%s %s/%s: %s", event.reason, event.namespace, event.pod, event.message)
        self.events.append(event)


def overuse(snapshot: Snapshot) -> dict[ContainerKey, Overuse]:
    """Containers whose summed usage exceeds their limit (pure)."""
    totals: dict[ContainerKey, tuple[ContainerShares, int, set[int]]] = {}
    for usage in snapshot.usage:
        key = (usage.shares.pod_uid, usage.shares.container_id)
        shares, used, pids = totals.get(key, (usage.shares, 0, set()))
        totals[key] = (shares, used + usage.used, pids | set(usage.pids))
    return {
        key: Overuse(shares, used, tuple(sorted(pids)))
        for key, (shares, used, pids) in totals.items()
        if used > shares.limit
    }


def plan(
    over: Mapping[ContainerKey, Overuse],
    state: Mapping[ContainerKey, Tracked],
    now: float,
    settings: EnforcerSettings,
) -> tuple[dict[ContainerKey, Tracked], list[Action]]:
    """Next state and actions. Containers back under their limit are forgotten (pure)."""
    new_state: dict[ContainerKey, Tracked] = {}
    actions: list[Action] = []
    for key, item in over.items():
        tracked = state.get(key) or Tracked(since=now)
        over_for = now - tracked.since
        if tracked.termed_at is None:
            if over_for >= settings.grace_s:
                actions.append(Action("term", item, over_for))
                tracked = replace(tracked, termed_at=now)
        else:
            last = tracked.killed_at if tracked.killed_at is not None else tracked.termed_at
            if now - last >= settings.term_timeout_s:
                actions.append(Action("kill", item, over_for))
                tracked = replace(tracked, killed_at=now)
        new_state[key] = tracked
    return new_state, actions


def describe(action: Action, dry_run: bool) -> EnforcementEvent:
    shares = action.overuse.shares
    sig = "SIGTERM" if action.step == "term" else "SIGKILL"
    verb = f"would send {sig}" if dry_run else f"sent {sig}"
    message = (
        f"container {shares.ref.container} uses {action.overuse.used // MIB} MiB of GPU memory, "
        f"over its limit of {shares.limit // MIB} MiB for {action.over_for_s:.0f}s; {verb} to "
        f"GPU processes {', '.join(map(str, action.overuse.pids))}"
    )
    reason = "GpuMemoryLimitExceeded" if action.step == "term" else "GpuProcessesKilled"
    return EnforcementEvent(
        shares.ref.namespace, shares.ref.pod, shares.pod_uid, shares.ref.container, reason, message
    )


class EnforcerMetrics:
    """``kubepie_gpu_enforcer_actions_total`` in an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "kubepie_gpu_enforcer_actions",
            "Enforcement steps taken (or, in dry-run, that would have been taken)",
            ["namespace", "pod", "container", "action"],
            registry=registry,
        )


class Enforcer:
    def __init__(
        self,
        monitor: Monitor,
        settings: EnforcerSettings,
        events: EventSink,
        metrics: EnforcerMetrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monitor = monitor
        self.settings = settings
        self.events = events
        self.metrics = metrics
        self.clock = clock
        self._state: dict[ContainerKey, Tracked] = {}

    async def tick(self) -> list[Action]:
        """Read usage once, and take the steps that are due."""
        await self.monitor.refresh()
        snapshot = self.monitor.snapshot()
        self._state, actions = plan(overuse(snapshot), self._state, self.clock(), self.settings)
        for action in actions:
            await self._apply(action)
        return actions

    async def _apply(self, action: Action) -> None:
        dry_run = self.settings.dry_run
        if not dry_run:
            sig = signal.SIGTERM if action.step == "term" else signal.SIGKILL
            for pid in action.overuse.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        ref = action.overuse.shares.ref
        if self.metrics is not None:
            step = f"dry_run_{action.step}" if dry_run else action.step
            self.metrics.actions.labels(ref.namespace, ref.pod, ref.container, step).inc()
        try:
            await self.events.emit(describe(action, dry_run))
        except Exception:  # an unreachable API server must not stop enforcement
            log.exception("cannot record the event for %s", ref)

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled; a failed reading is logged and retried."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("GPU enforcement tick failed")
            await asyncio.sleep(self.settings.interval_s)
