"""Pure decisions of the operator: a FileServer's status from its Pod, and whether it is idle.

Phases: ``Pending`` (no Pod yet, or not scheduled), ``Starting`` (scheduled, not ready),
``Ready`` (the Pod is Ready and has an IP: ``address`` is ``podIP:8080``), ``Failed`` with a
reason a person can act on: the scheduler's (e.g. a PersistentVolumeClaim that does not
exist), the kubelet's (image pull, a missing Secret key or volume), or the server's exit.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubepie.kube.resources import DAV_PORT, S3_PORT, Phase

#: Container waiting reasons that will not go away by waiting.
FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)


@dataclass(frozen=True, slots=True)
class PodReport:
    """What the Pod says about the server."""

    phase: Phase
    reason: str
    message: str
    address: str | None = None
    s3_address: str | None = None


def report(pod: Mapping[str, Any] | None) -> PodReport:
    """The FileServer's state given its Pod (None: there is none)."""
    if pod is None:
        return PodReport("Pending", "NoPod", "the file-server Pod is being created")
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return PodReport("Starting", "PodTerminating", "the old Pod is being removed")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    phase = status.get("phase")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return PodReport("Failed", str(waiting["reason"]), str(waiting.get("message") or ""))
        terminated = state.get("terminated")
        if terminated and phase in ("Failed", "Succeeded"):
            code = terminated.get("exitCode")
            return PodReport(
                "Failed",
                "ServerExited",
                f"the file server exited with status {code}"
                + (f" ({terminated['reason']})" if terminated.get("reason") else ""),
            )
    if phase in ("Failed", "Succeeded"):
        return PodReport("Failed", "PodFailed", str(status.get("message") or f"Pod {phase}"))
    scheduled = conditions.get("PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        reason = str(scheduled.get("reason") or "Unschedulable")
        message = str(scheduled.get("message") or "")
        return PodReport("Failed", reason, message)
    ready = conditions.get("Ready")
    ip = status.get("podIP")
    if ready is not None and ready.get("status") == "True" and ip:
        host = f"[{ip}]" if ":" in ip else ip
        return PodReport("Ready", "PodReady", "", f"{host}:{DAV_PORT}", f"{host}:{S3_PORT}")
    if scheduled is None:
        return PodReport("Pending", "NotScheduled", "waiting for the scheduler")
    return PodReport("Starting", "PodStarting", "waiting for the file server to listen")


def pod_is_finished(pod: Mapping[str, Any]) -> bool:
    """The Pod's server exited (``restartPolicy: Never``): it must be replaced."""
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def finished_for(pod: Mapping[str, Any], now: datetime.datetime) -> float:
    """Seconds since the Pod's container ended (0 when unknown): a server that keeps failing
    is replaced at most once per :data:`RESTART_DELAY`, not in a tight loop."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        ended = ((container.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if ended:
            return idle_seconds({"status": {"lastActivity": ended}}, now)
    return 0.0


#: Seconds a finished Pod is kept (and reported) before it is replaced.
RESTART_DELAY = 5.0


def new_status(
    previous: Mapping[str, Any], pod_report: PodReport, generation: int, now: str
) -> dict[str, Any]:
    """The FileServer's next ``status`` (``lastActivity`` is kept: the router owns it)."""
    ready = "True" if pod_report.phase == "Ready" else "False"
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    old_ready = old.get("Ready") or {}
    transition = (
        old_ready.get("lastTransitionTime")
        if old_ready.get("status") == ready and old_ready.get("lastTransitionTime")
        else now
    )
    status: dict[str, Any] = {
        "phase": pod_report.phase,
        "reason": pod_report.reason,
        "message": pod_report.message,
        "address": pod_report.address,
        "s3Address": pod_report.s3_address,
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": ready,
                "reason": pod_report.reason,
                "message": pod_report.message,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        ],
    }
    return status


def changed(previous: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """True when ``status`` says something ``previous`` does not."""
    return any(previous.get(key) != value for key, value in status.items())


def idle_seconds(fileserver: Mapping[str, Any], now: datetime.datetime) -> float:
    """Seconds since the router last reported activity (or since creation, if never)."""
    stamp = (fileserver.get("status") or {}).get("lastActivity") or (
        fileserver.get("metadata") or {}
    ).get("creationTimestamp")
    if not stamp:
        return 0.0
    try:
        when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (now - when).total_seconds())


def timestamp(now: datetime.datetime) -> str:
    """RFC 3339 in UTC, whole seconds, as the API writes times."""
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
