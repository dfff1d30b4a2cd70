"""Meta-devices: each GPU or MIG instance advertised as N shares of its memory.

A meta-device ID encodes the device UUID, the share size it was sold with, and its number:
``<uuid>-m<share MB>-<n>``, e.g. ``GPU-0f3e...-m256-17`` (at most 63 characters, as the
kubelet requires). Carrying the share size in the ID lets the guarantee of a running container
be computed from its device IDs alone, even after the configuration changed. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpu.config import GpuConfig, SharingEntry
from gpu.errors import UnknownDeviceError
from gpu.models import MIB, GpuDevice

MAX_ID_LENGTH = 63


@dataclass(frozen=True, order=True)
class MetaDeviceId:
    uuid: str
    share_mb: int
    number: int

    def __str__(self) -> str:
        return f"{self.uuid}-m{self.share_mb}-{self.number}"

    @property
    def share_bytes(self) -> int:
        return self.share_mb * MIB


def parse_id(text: str) -> MetaDeviceId:
    # UUIDs are hex groups; the last "-m" introduces the share size.
    head, sep, tail = text.rpartition("-m")
    if not sep:
        raise UnknownDeviceError(f"not a meta-device ID: {text!r}")
    uuid = head
    size, dash, number = tail.partition("-")
    if not (dash and uuid and size.isdigit() and number.isdigit()):
        raise UnknownDeviceError(f"not a meta-device ID: {text!r}")
    return MetaDeviceId(uuid, int(size), int(number))


def share_layout(entry: SharingEntry, memory_total: int) -> tuple[int, int]:
    """``(share size in MB, advertised share count)`` for a device of ``memory_total`` bytes."""
    total_mb = memory_total // MIB
    if entry.chunk_mb is not None:
        size_mb, count = entry.chunk_mb, total_mb // entry.chunk_mb
    else:
        count = entry.shares_per_device or 1
        size_mb = total_mb // count
    if size_mb == 0:
        return 0, 0
    return size_mb, max(count - entry.reserved_chunks, 0)


@dataclass(frozen=True)
class Inventory:
    """The meta-devices of one resource: ordered IDs, and the device behind each UUID."""

    resource: str
    ids: tuple[MetaDeviceId, ...]
    devices: dict[str, GpuDevice]

    def strings(self) -> list[str]:
        return [str(i) for i in self.ids]

    def device_of(self, meta: MetaDeviceId) -> GpuDevice:
        device = self.devices.get(meta.uuid)
        if device is None:
            raise UnknownDeviceError(f"{meta} is not on a device of {self.resource}")
        return device


def build_inventory(
    config: GpuConfig, entry: SharingEntry, devices: Iterable[GpuDevice]
) -> Inventory:
    """Meta-devices for every device whose first matching entry is ``entry``.

    Devices known unhealthy keep their last layout only through :func:`merge_health`; here
    a lost device (zero memory) advertises nothing.
    """
    ids: list[MetaDeviceId] = []
    by_uuid: dict[str, GpuDevice] = {}
    for device in devices:
        if config.entry_for(device) != entry:
            continue
        size_mb, count = share_layout(entry, device.memory_total)
        by_uuid[device.uuid] = device
        ids.extend(MetaDeviceId(device.uuid, size_mb, n) for n in range(count))
    for meta in ids:
        if len(str(meta)) > MAX_ID_LENGTH:
            raise UnknownDeviceError(f"meta-device ID longer than {MAX_ID_LENGTH}: {meta}")
    return Inventory(entry.resource, tuple(ids), by_uuid)


def guarantee_bytes(device_ids: Sequence[str]) -> int:
    """Memory a container was promised: the sum of its meta-devices' share sizes."""
    total = 0
    for text in device_ids:
        try:
            total += parse_id(text).share_bytes
        except UnknownDeviceError:
            continue
    return total


def physical_uuids(device_ids: Iterable[str]) -> list[str]:
    """Distinct device UUIDs behind ``device_ids``, in first-seen order."""
    seen: dict[str, None] = {}
    for text in device_ids:
        seen.setdefault(parse_id(text).uuid, None)
    return list(seen)
