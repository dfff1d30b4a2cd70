"""The notebook pod, changed for one user: pure functions over the pod manifest as a dict.

:func:`apply` takes the manifest KubeSpawner built (already serialised to plain JSON data) and
a :class:`PodPlan` and returns a new manifest with:

* the user's UID, primary GID and supplementary GIDs as the security context, ``runAsNonRoot``
  and no privilege escalation for every container;
* the NSS ConfigMap's ``passwd`` and ``group`` mounted over ``/etc/passwd`` and ``/etc/group``;
* ``HOME``, ``USER``, ``LOGNAME``, ``NB_USER``/``NB_UID``/``NB_GID`` and the sidecar URLs;
* the user's storage mounts (host paths, same path inside), LXCFS files over ``/proc`` and
  ``/sys/devices/system/cpu`` (switchable), and the startup wrapper as the container command;
* the walltime and token-helper sidecars (``singleuser.extraContainers``) given their per-server
  settings and tokens, or removed when not wanted; the token volume is in memory and only the
  helper may write it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubintegration.settings import KubePie
from identity.models import Identity
from identity.storage import ResolvedMount

NOTEBOOK = "notebook"
WALLTIME = "kubepie-walltime"
TOKEN_HELPER = "kubepie-token-helper"  # noqa: S105 (a container name)
NSS_VOLUME = "kubepie-nss"
TOKEN_VOLUME = "kubepie-token"  # noqa: S105 (a volume name)
NOBODY = 65534

LXCFS_FILES = ("cpuinfo", "meminfo", "stat", "uptime", "diskstats", "swaps", "loadavg")
LXCFS_CPU_DIR = "/sys/devices/system/cpu"

STARTUP_WRAPPER = r"""#!/bin/sh
# KubePie startup wrapper: thread counts and memory limit from the cgroup (v2 or v1), then the
# image's own command, unchanged.
cg="${KUBEPIE_CGROUP_ROOT:-/sys/fs/cgroup}"
cpus=""
if [ -r "$cg/cpu.max" ]; then
  read -r quota period < "$cg/cpu.max"
  if [ "$quota" != "max" ]; then cpus=$(( (quota + period - 1) / period )); fi
elif [ -r "$cg/cpu/cpu.cfs_quota_us" ]; then
  quota=$(cat "$cg/cpu/cpu.cfs_quota_us")
  period=$(cat "$cg/cpu/cpu.cfs_period_us")
  if [ "$quota" -gt 0 ]; then cpus=$(( (quota + period - 1) / period )); fi
fi
if [ -n "$cpus" ]; then
  export KUBEPIE_CPU_LIMIT="$cpus"
  for var in OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS NUMEXPR_NUM_THREADS \
             NUMEXPR_MAX_THREADS NUMBA_NUM_THREADS VECLIB_MAXIMUM_THREADS JULIA_NUM_THREADS; do
    eval "[ -n \"\${$var}\" ] || export $var=$cpus"
  done
fi
mem=""
if [ -r "$cg/memory.max" ]; then
  mem=$(cat "$cg/memory.max")
  if [ "$mem" = "max" ]; then mem=""; fi
elif [ -r "$cg/memory/memory.limit_in_bytes" ]; then
  mem=$(cat "$cg/memory/memory.limit_in_bytes")
  if [ "$mem" -ge 9223372036854771712 ]; then mem=""; fi
fi
if [ -n "$mem" ]; then
  export KUBEPIE_MEM_LIMIT="$mem"
  [ -n "$MEM_LIMIT" ] || export MEM_LIMIT="$mem"
fi
exec "$@"
"""


@dataclass(frozen=True, slots=True)
class Walltime:
    """The absolute deadline of this server, fixed at spawn, and the token that stops it."""

    deadline: float
    total_s: int
    token: str


@dataclass(frozen=True, slots=True)
class PodPlan:
    """Everything :func:`apply` needs for one user's server."""

    identity: Identity
    server_name: str
    mounts: tuple[ResolvedMount, ...]
    settings: KubePie
    hub_api_url: str
    walltime: Walltime | None = None
    #: Hub token that may read this user's ``auth_state``; ``None``: no token helper.
    helper_token: str | None = None


def security_context(identity: Identity) -> dict[str, Any]:
    return {
        "runAsUser": identity.uid,
        "runAsGroup": identity.gid,
        "supplementalGroups": list(identity.gids),
        "runAsNonRoot": True,
    }


def _container_security(uid: int, gid: int) -> dict[str, Any]:
    return {
        "runAsUser": uid,
        "runAsGroup": gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def token_file(settings: KubePie, uid: int) -> str:
    """WLCG bearer token discovery file name, in the shared in-memory volume."""
    return f"{settings.token_helper.token_dir.rstrip('/')}/bt_u{uid}"


def user_env(plan: PodPlan) -> dict[str, str]:
    ident, cfg = plan.identity, plan.settings
    env = {
        "HOME": cfg.home_template.format(username=ident.username),
        "USER": ident.username,
        "LOGNAME": ident.username,
        "NB_USER": ident.username,
        "NB_UID": str(ident.uid),
        "NB_GID": str(ident.gid),
    }
    if plan.walltime is not None:
        env["KUBEPIE_WALLTIME_URL"] = f"http://127.0.0.1:{cfg.walltime.port}/"
    if plan.helper_token is not None:
        env["BEARER_TOKEN_FILE"] = token_file(cfg, ident.uid)
        env["KUBEPIE_TOKEN_URL"] = f"http://127.0.0.1:{cfg.token_helper.port}/token"
    return env


def _set_env(container: dict[str, Any], values: Mapping[str, str]) -> None:
    env = [e for e in container.get("env") or [] if e.get("name") not in values]
    env.extend({"name": k, "value": v} for k, v in values.items())
    container["env"] = env


def _volume_name(prefix: str, text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return f"{prefix}-{slug}"[:63].rstrip("-")


def _storage(mounts: tuple[ResolvedMount, ...]) -> tuple[list[Any], list[Any]]:
    volumes, volume_mounts = [], []
    for index, mount in enumerate(mounts):
        name = _volume_name(f"kubepie-m{index}", mount.name)
        volumes.append({"name": name, "hostPath": {"path": mount.path, "type": "Directory"}})
        volume_mounts.append({"name": name, "mountPath": mount.path, "readOnly": mount.read_only})
    return volumes, volume_mounts


def _lxcfs(root: str) -> tuple[list[Any], list[Any]]:
    volumes, volume_mounts = [], []
    for name in LXCFS_FILES:
        vol = f"lxcfs-proc-{name}"
        volumes.append({"name": vol, "hostPath": {"path": f"{root}/proc/{name}", "type": "File"}})
        volume_mounts.append({"name": vol, "mountPath": f"/proc/{name}", "readOnly": True})
    cpu = {"path": f"{root}{LXCFS_CPU_DIR}", "type": "Directory"}
    volumes.append({"name": "lxcfs-sys-cpu", "hostPath": cpu})
    volume_mounts.append({"name": "lxcfs-sys-cpu", "mountPath": LXCFS_CPU_DIR, "readOnly": True})
    return volumes, volume_mounts


def _nss(configmap: str) -> tuple[list[Any], list[Any]]:
    items = [{"key": "passwd", "path": "passwd"}, {"key": "group", "path": "group"}]
    volume = {"name": NSS_VOLUME, "configMap": {"name": configmap, "items": items}}
    mounts = [
        {"name": NSS_VOLUME, "mountPath": f"/etc/{key}", "subPath": key, "readOnly": True}
        for key in ("passwd", "group")
    ]
    return [volume], mounts


def _server_env(plan: PodPlan, token: str) -> dict[str, str]:
    return {
        "KUBEPIE_HUB_API_URL": plan.hub_api_url,
        "KUBEPIE_HUB_TOKEN": token,
        "KUBEPIE_USER": plan.identity.username,
        "KUBEPIE_SERVER_NAME": plan.server_name,
    }


def walltime_env(plan: PodPlan, walltime: Walltime) -> dict[str, str]:
    """Environment of the walltime sidecar (``kubepie-walltime``)."""
    cfg = plan.settings.walltime
    env = _server_env(plan, walltime.token)
    env |= {
        "KUBEPIE_WALLTIME_DEADLINE": f"{walltime.deadline:.3f}",
        "KUBEPIE_WALLTIME_TOTAL": str(walltime.total_s),
        "KUBEPIE_WALLTIME_WARN_BEFORE": str(cfg.warn_before_s),
        "KUBEPIE_WALLTIME_PORT": str(cfg.port),
    }
    return env


def token_helper_env(plan: PodPlan, token: str) -> dict[str, str]:
    """Environment of the token helper, without the OIDC client (that comes from a Secret)."""
    cfg = plan.settings.token_helper
    env = _server_env(plan, token)
    env |= {
        "KUBEPIE_TOKEN_FILE": token_file(plan.settings, plan.identity.uid),
        "KUBEPIE_TOKEN_PORT": str(cfg.port),
        "KUBEPIE_TOKEN_REFRESH_MARGIN": str(cfg.refresh_margin_s),
    }
    if cfg.token_endpoint:
        env["KUBEPIE_TOKEN_ENDPOINT"] = cfg.token_endpoint
    return env


def _walltime_sidecar(container: dict[str, Any], plan: PodPlan, walltime: Walltime) -> None:
    _set_env(container, walltime_env(plan, walltime))
    container["securityContext"] = _container_security(NOBODY, NOBODY)


def _token_helper_sidecar(container: dict[str, Any], plan: PodPlan, token: str) -> None:
    cfg = plan.settings.token_helper
    _set_env(container, token_helper_env(plan, token))
    secret = cfg.client_secret_name
    container["env"].extend(
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
        }
        for name, key in (
            ("KUBEPIE_CLIENT_ID", "client-id"),
            ("KUBEPIE_CLIENT_SECRET", "client-secret"),
        )
    )
    mount = {"name": TOKEN_VOLUME, "mountPath": cfg.token_dir}
    container["volumeMounts"] = [*(container.get("volumeMounts") or []), mount]
    ident = plan.identity
    container["securityContext"] = _container_security(ident.uid, ident.gid)


def apply(pod: Mapping[str, Any], plan: PodPlan) -> dict[str, Any]:
    """A copy of ``pod`` prepared for ``plan``; raises ``ValueError`` without a notebook."""
    out = copy.deepcopy(dict(pod))
    spec = out.setdefault("spec", {})
    containers: list[dict[str, Any]] = spec.get("containers") or []
    notebook = next((c for c in containers if c.get("name") == NOTEBOOK), None)
    if notebook is None:
        raise ValueError("the pod has no 'notebook' container")
    ident, cfg = plan.identity, plan.settings

    spec["securityContext"] = {**(spec.get("securityContext") or {}), **security_context(ident)}
    spec["automountServiceAccountToken"] = False
    notebook["securityContext"] = _container_security(ident.uid, ident.gid)
    _set_env(notebook, user_env(plan))

    volumes: list[Any] = []
    mounts: list[Any] = []
    for part in (
        _nss(cfg.nss_configmap) if cfg.nss_configmap else ([], []),
        _storage(plan.mounts),
        _lxcfs(cfg.lxcfs_path) if cfg.lxcfs else ([], []),
    ):
        volumes.extend(part[0])
        mounts.extend(part[1])

    kept: list[dict[str, Any]] = []
    for container in containers:
        name = container.get("name")
        if name == WALLTIME:
            if plan.walltime is None:
                continue
            _walltime_sidecar(container, plan, plan.walltime)
        elif name == TOKEN_HELPER:
            if plan.helper_token is None:
                continue
            _token_helper_sidecar(container, plan, plan.helper_token)
        kept.append(container)
    spec["containers"] = kept
    if plan.helper_token is not None:
        token_dir = cfg.token_helper.token_dir
        volumes.append({"name": TOKEN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
        mounts.append({"name": TOKEN_VOLUME, "mountPath": token_dir, "readOnly": True})

    spec["volumes"] = [*(spec.get("volumes") or []), *volumes]
    notebook["volumeMounts"] = [*(notebook.get("volumeMounts") or []), *mounts]
    if cfg.startup_wrapper:
        notebook["command"] = ["/bin/sh", cfg.startup_wrapper]
    return out
