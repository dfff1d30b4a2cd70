"""The node agent's settings: sharing entries and paths, one validated YAML file.

Example::

    sharing:
      - resource: kubepie.io/gpu-shares      # one device plugin per entry
        chunk_mb: 100                         # or shares_per_device: 320
        reserved_chunks: 2                    # shares per device never advertised
        strategy: collocate                   # collocate | spread | no-split
        match: {models: ["NVIDIA H100*"], mig: false}
      - resource: kubepie.io/mig-shares
        shares_per_device: 100
        match: {mig_profiles: ["3g.40gb"]}
    admin_token_file: /etc/kubepie-gpu/admin-token

A device belongs to the first entry that matches it. :func:`load_config` is the only reader;
:class:`GpuConfig` is frozen and passed explicitly.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpu.errors import ConfigError
from gpu.models import GpuDevice

Strategy = Literal["collocate", "spread", "no-split"]

#: ``<dns subdomain>/<name>`` as the kubelet accepts extended resource names.
_RESOURCE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeviceFilter(_Frozen):
    """Which devices an entry shares; every non-empty criterion must hold."""

    #: Device UUIDs (``GPU-...``/``MIG-...``); a GPU UUID also selects its MIG instances.
    uuids: tuple[str, ...] = ()
    #: Shell-style globs on the GPU model name, e.g. ``NVIDIA H100*``.
    models: tuple[str, ...] = ()
    #: MIG profiles such as ``3g.40gb``; selects MIG instances only.
    mig_profiles: tuple[str, ...] = ()
    #: MIG GPU-instance IDs; selects MIG instances only.
    gpu_instance_ids: tuple[int, ...] = ()
    #: ``True``: MIG instances only; ``False``: whole GPUs only; unset: both.
    mig: bool | None = None

    def matches(self, device: GpuDevice) -> bool:
        if self.uuids and not {device.uuid, device.parent_uuid} & set(self.uuids):
            return False
        if self.models and not any(fnmatch.fnmatchcase(device.model, m) for m in self.models):
            return False
        if self.mig is not None and device.is_mig != self.mig:
            return False
        if self.mig_profiles and device.mig_profile not in self.mig_profiles:
            return False
        return not (self.gpu_instance_ids and device.gpu_instance_id not in self.gpu_instance_ids)


class SharingEntry(_Frozen):
    """One shared resource: how its devices are cut into meta-devices, and how to allocate."""

    resource: str
    #: Meta-devices per device; the share size is the device memory / N, in whole MB.
    shares_per_device: int | None = Field(default=None, ge=1, le=100_000)
    #: Share size in MB (MiB); the count is the device memory / chunk. Exclusive with the above.
    chunk_mb: int | None = Field(default=None, ge=1)
    #: Shares per device that are never advertised (memory kept for the driver, contexts).
    reserved_chunks: int = Field(default=0, ge=0)
    strategy: Strategy = "collocate"
    match: DeviceFilter = DeviceFilter()

    @model_validator(mode="after")
    def _one_sizing(self) -> SharingEntry:
        if not _RESOURCE.match(self.resource):
            raise ValueError(f"resource {self.resource!r} is not <domain>/<name>")
        if (self.shares_per_device is None) == (self.chunk_mb is None):
            raise ValueError("set exactly one of shares_per_device and chunk_mb")
        return self


class EnforcerSettings(_Frozen):
    #: Seconds between two readings; MetaGPU used 5.
    interval_s: float = Field(default=5.0, gt=0)
    #: Seconds a container may stay over its limit before its processes are stopped.
    grace_s: float = Field(default=30.0, ge=0)
    #: Seconds between SIGTERM and SIGKILL.
    term_timeout_s: float = Field(default=10.0, ge=0)
    #: Record and report, but never signal.
    dry_run: bool = False


class GpuConfig(_Frozen):
    sharing: tuple[SharingEntry, ...] = Field(min_length=1)
    #: The kubelet's device plugin directory (kubelet.sock and the plugins' sockets).
    device_plugin_dir: Path = Path("/var/lib/kubelet/device-plugins")
    pod_resources_socket: Path = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
    #: Where host processes are read; the agent runs with hostPID.
    proc_root: Path = Path("/proc")
    #: Node daemon socket on the host; its directory is mounted into GPU containers.
    daemon_socket: Path = Path("/run/kubepie-gpu/daemon.sock")
    #: Where that directory appears inside containers.
    daemon_dir_in_container: Path = Path("/run/kubepie-gpu")
    #: File holding the admin credential for node-wide views; unset: no node-wide views.
    admin_token_file: Path | None = None
    metrics_host: str = "0.0.0.0"  # noqa: S104 - the exporter is scraped from the pod network
    metrics_port: int = Field(default=2113, ge=0, le=65535)
    #: Seconds between NVML health checks of the advertised devices.
    health_interval_s: float = Field(default=5.0, gt=0)
    enforcer: EnforcerSettings = EnforcerSettings()

    @model_validator(mode="after")
    def _unique_resources(self) -> GpuConfig:
        names = [entry.resource for entry in self.sharing]
        if len(names) != len(set(names)):
            raise ValueError("each sharing resource may appear once")
        return self

    def entry_for(self, device: GpuDevice) -> SharingEntry | None:
        """The first entry whose filter matches ``device``."""
        return next((e for e in self.sharing if e.match.matches(device)), None)


def parse_config(text: str) -> GpuConfig:
    try:
        data = yaml.safe_load(text)
        return GpuConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid GPU sharing configuration: {exc}") from exc


def load_config(path: Path) -> GpuConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_config(text)
