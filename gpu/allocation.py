"""Which meta-devices to give a container: collocate, spread or no-split. Pure functions.

* ``collocate`` (default) fills one device first: the request goes to the device with the
  fewest free shares that can hold all of it (best fit); only when no single device can, it
  is split, taking from the devices with most free shares first.
* ``spread`` takes shares round-robin, one per device per round, devices with most free
  shares first, so a request spreads over as many devices as possible.
* ``no-split`` is collocate that fails rather than split a request across devices.

Shares the kubelet says must be included are always part of the answer, and their devices are
preferred. Within a device the lowest share numbers go first.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpu.config import Strategy
from gpu.errors import CannotFitError
from gpu.metadevices import MetaDeviceId, parse_id


def _group(ids: Sequence[MetaDeviceId]) -> dict[str, list[MetaDeviceId]]:
    groups: dict[str, list[MetaDeviceId]] = {}
    for meta in sorted(ids, key=lambda m: (m.uuid, m.number)):
        groups.setdefault(meta.uuid, []).append(meta)
    return groups


def preferred_allocation(
    available: Sequence[str],
    must_include: Sequence[str],
    size: int,
    strategy: Strategy = "collocate",
) -> list[str]:
    """Pick ``size`` IDs out of ``available`` (plus ``must_include``) following ``strategy``.

    Raises :class:`CannotFitError` when too few shares are free, or when a ``no-split``
    request cannot be served from a single device.
    """
    must = [parse_id(i) for i in dict.fromkeys(must_include)]
    must_set = set(must)
    free = [m for m in (parse_id(i) for i in dict.fromkeys(available)) if m not in must_set]
    if size < len(must):
        raise CannotFitError(f"{len(must)} devices must be included in a request of {size}")
    if len(must) + len(free) < size:
        raise CannotFitError(f"request of {size} shares, only {len(must) + len(free)} available")
    rest = size - len(must)
    groups = _group(free)
    must_devices = list(dict.fromkeys(m.uuid for m in must))
    if strategy == "spread":
        chosen = _spread(groups, rest)
    else:
        chosen = _collocate(groups, rest, must_devices, split=strategy == "collocate")
    return [str(m) for m in [*must, *chosen]]


def _collocate(
    groups: dict[str, list[MetaDeviceId]], rest: int, must_devices: list[str], *, split: bool
) -> list[MetaDeviceId]:
    if not split and len(must_devices) > 1:
        raise CannotFitError("no-split: the shares that must be included span several devices")
    if rest == 0:
        return []
    if must_devices:
        # Stay on the devices already part of the request when they can hold the rest.
        for uuid in must_devices:
            if len(groups.get(uuid, ())) >= rest:
                return groups[uuid][:rest]
        if not split:
            raise CannotFitError(
                f"no-split: {must_devices[0]} has {len(groups.get(must_devices[0], ()))} free "
                f"shares, {rest} more needed"
            )
    fitting = [uuid for uuid, free in groups.items() if len(free) >= rest]
    if fitting:
        best = min(fitting, key=lambda uuid: (len(groups[uuid]), uuid))
        return groups[best][:rest]
    if not split:
        largest = max((len(free) for free in groups.values()), default=0)
        raise CannotFitError(
            f"no-split: request of {rest} shares, the largest device has {largest} free"
        )
    chosen: list[MetaDeviceId] = []
    ordered = sorted(groups, key=lambda uuid: (-len(groups[uuid]), uuid))
    preferred = [u for u in must_devices if u in groups] + [
        u for u in ordered if u not in must_devices
    ]
    for uuid in preferred:
        take = groups[uuid][: rest - len(chosen)]
        chosen.extend(take)
        if len(chosen) == rest:
            break
    return chosen


def _spread(groups: dict[str, list[MetaDeviceId]], rest: int) -> list[MetaDeviceId]:
    queues = {uuid: list(free) for uuid, free in groups.items()}
    order = sorted(queues, key=lambda u: (-len(queues[u]), u))
    chosen: list[MetaDeviceId] = []
    while len(chosen) < rest:
        # One round: one share from each device that has any left, most free first.
        for uuid in order:
            if queues[uuid] and len(chosen) < rest:
                chosen.append(queues[uuid].pop(0))
    return chosen


def check_allocation(device_ids: Sequence[str], strategy: Strategy) -> None:
    """Validate the IDs of an Allocate request: parseable, and on one device for no-split."""
    uuids = {parse_id(i).uuid for i in device_ids}
    if strategy == "no-split" and len(uuids) > 1:
        raise CannotFitError(f"no-split: allocation spans {len(uuids)} devices")
