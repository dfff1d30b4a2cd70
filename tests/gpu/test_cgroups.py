"""cgroup parsing for each runtime, kubelet cgroup driver and cgroup version."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu.cgroups import CgroupContainer, OverrideResolver, ProcCgroupReader, parse_cgroup

UID = "3f2a1c9e-7b4d-4e2a-9c1f-0a1b2c3d4e5f"
UNDERSCORED = UID.replace("-", "_")
CID = "4c1e" * 16  # 64 hex characters
BESTEFFORT = f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UNDERSCORED}.slice"

V1_OTHER_CONTROLLERS = (
    "12:hugetlb:/\n11:devices:/user.slice\n10:cpuset:/\n"  # not in a pod: ignored
)

CASES = [
    (
        "v2 systemd containerd burstable",
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UNDERSCORED}.slice/cri-containerd-{CID}.scope\n",
        CgroupContainer(UID, CID, "containerd", 2),
    ),
    (
        "v2 systemd cri-o guaranteed",
        f"0::/kubepods.slice/kubepods-pod{UNDERSCORED}.slice/crio-{CID}.scope\n",
        CgroupContainer(UID, CID, "cri-o", 2),
    ),
    (
        "v2 systemd cri-o with crun's container sub-cgroup",
        f"0::/kubepods.slice/kubepods-pod{UNDERSCORED}.slice/crio-{CID}.scope/container\n",
        CgroupContainer(UID, CID, "cri-o", 2),
    ),
    (
        "v2 systemd docker besteffort",
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UNDERSCORED}.slice/docker-{CID}.scope\n",
        CgroupContainer(UID, CID, "docker", 2),
    ),
    (
        "v2 cgroupfs containerd",
        f"0::/kubepods/burstable/pod{UID}/{CID}\n",
        CgroupContainer(UID, CID, "unknown", 2),
    ),
    (
        "v2 cgroupfs guaranteed",
        f"0::/kubepods/pod{UID}/{CID}\n",
        CgroupContainer(UID, CID, "unknown", 2),
    ),
    (
        "v1 systemd docker",
        V1_OTHER_CONTROLLERS
        + f"9:memory:{BESTEFFORT}/docker-{CID}.scope\n"
        + f"1:name=systemd:{BESTEFFORT}/docker-{CID}.scope\n",
        CgroupContainer(UID, CID, "docker", 1),
    ),
    (
        "v1 cgroupfs docker",
        V1_OTHER_CONTROLLERS + f"4:memory:/kubepods/besteffort/pod{UID}/{CID}\n",
        CgroupContainer(UID, CID, "unknown", 1),
    ),
    (
        "v1 systemd cri-o",
        f"7:cpu,cpuacct:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UNDERSCORED}.slice/crio-{CID}.scope\n"
        f"5:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UNDERSCORED}.slice/crio-{CID}.scope\n",
        CgroupContainer(UID, CID, "cri-o", 1),
    ),
    (
        "v1 systemd containerd (slice:prefix:id)",
        f"1:name=systemd:/system.slice/containerd.service/kubepods-burstable-pod{UNDERSCORED}.slice:cri-containerd:{CID}\n",
        CgroupContainer(UID, CID, "containerd", 1),
    ),
    (
        "v1 cgroupfs containerd, pids only",
        f"3:pids:/kubepods/burstable/pod{UID}/{CID}\n",
        CgroupContainer(UID, CID, "unknown", 1),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_cgroup(text: str, expected: CgroupContainer) -> None:
    assert parse_cgroup(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0::/user.slice/user-0.slice/session-1.scope\n",
        "0::/system.slice/containerd.service\n",
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UNDERSCORED}.slice\n",
        f"0::/kubepods.slice/kubepods-pod{UNDERSCORED}.slice/crio-conmon-{CID}.scope\n",
        "garbage without colons\n",
        "",
    ],
)
def test_processes_outside_containers(text: str) -> None:
    assert parse_cgroup(text) is None


def test_reader_uses_the_proc_root(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(CASES[0][1])
    reader = ProcCgroupReader(tmp_path)
    assert reader.container_of(42) == CASES[0][2]
    assert reader.container_of(43) is None
    override = OverrideResolver({7: CgroupContainer("u", "c")}, reader)
    assert override.container_of(7) == CgroupContainer("u", "c")
    assert override.container_of(42) == CASES[0][2]


def test_real_proc_without_the_process() -> None:
    assert ProcCgroupReader().container_of(2**22 + 12345) is None
