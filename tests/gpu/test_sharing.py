"""Pure sharing logic: configuration, meta-device IDs and layout, allocation, limits."""

from __future__ import annotations

import pytest

from gpu.allocation import check_allocation, preferred_allocation
from gpu.config import GpuConfig, parse_config
from gpu.errors import CannotFitError, ConfigError, UnknownDeviceError
from gpu.metadevices import (
    MetaDeviceId,
    build_inventory,
    guarantee_bytes,
    parse_id,
    physical_uuids,
    share_layout,
)
from gpu.models import MIB, ContainerRef, GpuDevice
from gpu.workloads import PodInfo, container_envelope, join_shares
from tests.gpu.fakes import A100, H100, MIG_2G, MIG_3G, SECOND

H100_DEV = GpuDevice(0, H100, "NVIDIA H100 80GB HBM3", 81920 * MIB, 0)
SECOND_DEV = GpuDevice(2, SECOND, "NVIDIA L4", 23034 * MIB, 0)
MIG3 = GpuDevice(
    1,
    MIG_3G,
    "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
    20480 * MIB,
    0,
    parent_uuid=A100,
    gpu_instance_id=1,
)
MIG2 = GpuDevice(
    1,
    MIG_2G,
    "NVIDIA A100-SXM4-40GB MIG 2g.10gb",
    10240 * MIB,
    0,
    parent_uuid=A100,
    gpu_instance_id=2,
)
DEVICES = [H100_DEV, MIG3, MIG2, SECOND_DEV]


def config(text: str) -> GpuConfig:
    return parse_config(text)


def test_configuration_errors() -> None:
    bad = [
        "sharing: []",
        "sharing: [{resource: kubepie.io/x}]",  # no sizing
        "sharing: [{resource: kubepie.io/x, chunk_mb: 100, shares_per_device: 4}]",
        "sharing: [{resource: no-slash, chunk_mb: 100}]",
        "sharing: [{resource: kubepie.io/x, chunk_mb: 100, strategy: random}]",
        "sharing: [{resource: kubepie.io/x, chunk_mb: 100}, {resource: kubepie.io/x, chunk_mb: 5}]",
        "sharing: [{resource: kubepie.io/x, chunk_mb: 100, unknown_key: 1}]",
        "sharing: [{resource: kubepie.io/x, chunk_mb: 0}]",
        "sharing: {{{",
    ]
    for text in bad:
        with pytest.raises(ConfigError):
            parse_config(text)


def test_filters_pick_the_first_matching_entry() -> None:
    cfg = config(
        """
sharing:
  - resource: kubepie.io/h100
    shares_per_device: 320
    match: {models: ["NVIDIA H100*"]}
  - resource: kubepie.io/mig-3g
    shares_per_device: 200
    match: {mig_profiles: ["3g.20gb"]}
  - resource: kubepie.io/by-instance
    chunk_mb: 1024
    match: {uuids: ["A100_UUID"], gpu_instance_ids: [2]}
  - resource: kubepie.io/rest
    chunk_mb: 1000
    match: {mig: false}
""".replace("A100_UUID", A100)
    )
    chosen = {d.uuid: (e.resource if (e := cfg.entry_for(d)) else None) for d in DEVICES}
    assert chosen == {
        H100: "kubepie.io/h100",
        MIG_3G: "kubepie.io/mig-3g",
        MIG_2G: "kubepie.io/by-instance",
        SECOND: "kubepie.io/rest",
    }


def test_share_layout() -> None:
    cfg = config(
        "sharing: [{resource: kubepie.io/a, shares_per_device: 320},"
        " {resource: kubepie.io/b, chunk_mb: 100, reserved_chunks: 4}]"
    )
    per_device, chunked = cfg.sharing
    assert share_layout(per_device, 81920 * MIB) == (256, 320)
    assert share_layout(per_device, 32768 * MIB) == (102, 320)  # integer MB, like MortalGPU
    assert share_layout(chunked, 40960 * MIB) == (100, 405)  # 409 chunks, 4 held back
    assert share_layout(per_device, 100 * MIB) == (0, 0)  # smaller than one MB per share


def test_meta_device_ids_round_trip_and_fit_the_kubelet() -> None:
    cfg = config("sharing: [{resource: kubepie.io/a, chunk_mb: 100000, match: {}}]")
    inventory = build_inventory(cfg, cfg.sharing[0], [H100_DEV])
    assert inventory.ids == ()  # an 80 GiB GPU holds no 100 GB share
    cfg = config("sharing: [{resource: kubepie.io/a, shares_per_device: 4}]")
    inventory = build_inventory(cfg, cfg.sharing[0], DEVICES)
    assert len(inventory.ids) == 16
    for meta in inventory.ids:
        text = str(meta)
        assert len(text) <= 63
        assert parse_id(text) == meta
    assert parse_id(f"{MIG_2G}-m2560-3") == MetaDeviceId(MIG_2G, 2560, 3)
    assert inventory.device_of(parse_id(f"{MIG_2G}-m2560-3")) == MIG2
    for bad in ["GPU-1234", f"{H100}-mx-1", f"{H100}-m12-", "-m1-2"]:
        with pytest.raises(UnknownDeviceError):
            parse_id(bad)
    ids = [f"{H100}-m256-0", f"{H100}-m256-1", f"{MIG_2G}-m100-0", "garbage"]
    assert guarantee_bytes(ids) == (512 + 100) * MIB
    assert physical_uuids(ids[:3]) == [H100, MIG_2G]


def ids(uuid: str, numbers: range) -> list[str]:
    return [f"{uuid}-m100-{n}" for n in numbers]


def test_collocate_best_fit_then_split_largest_first() -> None:
    available = ids(H100, range(10)) + ids(SECOND, range(3)) + ids(MIG_3G, range(5))
    # 3 fit on SECOND (the fullest device that holds them): fill it first.
    assert preferred_allocation(available, [], 3) == ids(SECOND, range(3))
    assert preferred_allocation(available, [], 4) == ids(MIG_3G, range(4))
    # 12 fit nowhere: the largest devices first.
    assert preferred_allocation(available, [], 12) == ids(H100, range(10)) + ids(MIG_3G, range(2))
    assert preferred_allocation(available, ids(SECOND, range(1)), 3) == ids(SECOND, range(3))


def test_spread_round_robin() -> None:
    available = ids(H100, range(4)) + ids(SECOND, range(2)) + ids(MIG_3G, range(1))
    chosen = preferred_allocation(available, [], 5, "spread")
    assert chosen == [
        *ids(H100, range(1)), *ids(SECOND, range(1)), *ids(MIG_3G, range(1)),
        *ids(H100, range(1, 2)), *ids(SECOND, range(1, 2)),
    ]  # fmt: skip


def test_no_split() -> None:
    available = ids(H100, range(4)) + ids(SECOND, range(6))
    assert preferred_allocation(available, [], 5, "no-split") == ids(SECOND, range(5))
    with pytest.raises(CannotFitError, match="largest device has 6 free"):
        preferred_allocation(available, [], 7, "no-split")
    with pytest.raises(CannotFitError, match="span several devices"):
        preferred_allocation(
            available, [ids(H100, range(1))[0], ids(SECOND, range(1))[0]], 3, "no-split"
        )
    check_allocation(ids(H100, range(3)), "no-split")
    with pytest.raises(CannotFitError):
        check_allocation(ids(H100, range(1)) + ids(SECOND, range(1)), "no-split")
    check_allocation(ids(H100, range(1)) + ids(SECOND, range(1)), "collocate")


def test_requests_that_never_fit() -> None:
    available = ids(H100, range(2))
    for strategy in ("collocate", "spread", "no-split"):
        with pytest.raises(CannotFitError):
            preferred_allocation(available, [], 3, strategy)
    with pytest.raises(CannotFitError):
        preferred_allocation(available, available, 1)  # more must-includes than the size


def test_limits_from_annotations() -> None:
    device_ids = {"kubepie.io/a": ids(H100, range(4))}
    assert container_envelope(device_ids, {}) == (400 * MIB, 400 * MIB)
    assert container_envelope(device_ids, {"gpu-mem-limit.kubepie.io/a": "10"}) == (
        400 * MIB,
        1000 * MIB,
    )
    # Below the request, or not a number: the request is the limit.
    assert container_envelope(device_ids, {"gpu-mem-limit.kubepie.io/a": "2"}) == (
        400 * MIB,
        400 * MIB,
    )
    assert container_envelope(device_ids, {"gpu-mem-limit.kubepie.io/a": "lots"}) == (
        400 * MIB,
        400 * MIB,
    )
    # The annotation names its resource.
    assert container_envelope(device_ids, {"gpu-mem-limit.kubepie.io/b": "10"}) == (
        400 * MIB,
        400 * MIB,
    )


def test_join_shares_keys_containers_by_pod_uid_and_container_id() -> None:
    pod = PodInfo(
        "uid-1",
        "ns",
        "nb",
        {"gpu-mem-limit.kubepie.io/a": "8"},
        {"containerd://abc": "main", "cri-o://def": "sidecar"},
    )
    assignments = {
        ContainerRef("ns", "nb", "main"): {
            "kubepie.io/a": ids(H100, range(4)),
            "nvidia.com/gpu": ["x"],
        },
        ContainerRef("ns", "other", "main"): {"kubepie.io/a": ids(H100, range(4, 6))},
    }
    joined = join_shares([pod], assignments, ["kubepie.io/a"])
    assert list(joined) == [("uid-1", "abc")]
    shares = joined[("uid-1", "abc")]
    assert shares.ref == ContainerRef("ns", "nb", "main")
    assert shares.device_ids == {"kubepie.io/a": tuple(ids(H100, range(4)))}
    assert (shares.guarantee, shares.limit) == (400 * MIB, 800 * MIB)
