"""The NVML adapter over the real pynvml, loading the fake ``libnvidia-ml.so.1``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpu.errors import DeviceLostError, NvmlError, NvmlUnavailableError
from gpu.nvml import PynvmlNvml, translate
from tests.gpu.fakes import A100, H100, MIG_2G, MIG_3G, FakeNvmlData, Proc

MIB = 2**20


def test_devices_whole_gpus_and_mig_instances(nvml: PynvmlNvml) -> None:
    devices = {d.uuid: d for d in nvml.devices()}
    assert list(devices) == [H100, MIG_3G, MIG_2G]  # the A100 itself is in MIG mode
    h100 = devices[H100]
    assert (h100.index, h100.name, h100.model) == (
        0,
        "NVIDIA H100 80GB HBM3",
        "NVIDIA H100 80GB HBM3",
    )
    assert (h100.memory_total, h100.memory_used) == (81920 * MIB, 2048 * MIB)
    assert h100.utilization_gpu == 37
    assert not h100.is_mig
    assert h100.mig_profile is None
    mig = devices[MIG_2G]
    assert mig.is_mig
    assert (mig.parent_uuid, mig.gpu_instance_id, mig.compute_instance_id) == (A100, 2, 0)
    assert mig.mig_profile == "2g.10gb"
    assert mig.model == "NVIDIA A100-SXM4-40GB"
    assert mig.memory_total == 10240 * MIB
    assert mig.utilization_gpu is None
    assert nvml.driver_version() == "999.99.fake"


def test_processes_per_device_and_instance(nvml: PynvmlNvml, nvml_data: FakeNvmlData) -> None:
    # Enough processes that pynvml's first call answers "insufficient size".
    nvml_data.procs = [Proc(H100, 100 + n, n) for n in range(1, 8)] + [Proc(MIG_3G, 200, 64)]
    nvml_data.write()
    processes = nvml.processes()
    on_h100 = [
        (p.pid, p.used_memory, p.gpu_instance_id) for p in processes if p.device_uuid == H100
    ]
    assert on_h100 == [(100 + n, n * MIB, None) for n in range(1, 8)]
    on_mig = [
        (p.pid, p.used_memory, p.gpu_instance_id) for p in processes if p.device_uuid == MIG_3G
    ]
    assert on_mig == [(200, 64 * MIB, 1)]
    assert len(processes) == 8


def test_a_lost_gpu_is_reported_unhealthy(nvml: PynvmlNvml, nvml_data: FakeNvmlData) -> None:
    nvml_data.procs = [Proc(H100, 300, 10)]
    nvml_data.gpus[0].lost = True
    nvml_data.write()
    h100 = next(d for d in nvml.devices() if d.uuid == H100)
    assert not h100.healthy
    assert h100.memory_total == 0
    assert [p for p in nvml.processes() if p.device_uuid == H100] == []


def test_driver_not_loaded(fake_nvml_library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_NVML_DATA", raising=False)  # the fake answers DRIVER_NOT_LOADED
    with pytest.raises(NvmlUnavailableError) as error:
        PynvmlNvml(fake_nvml_library).open()
    assert error.value.code == 9


def test_library_not_found_through_pynvml(tmp_path: Path) -> None:
    """A fresh interpreter without any libnvidia-ml.so.1 on the loader path."""
    code = (
        "from gpu.nvml import PynvmlNvml\n"
        "from gpu.errors import NvmlUnavailableError\n"
        "try:\n"
        "    PynvmlNvml().open()\n"
        "except NvmlUnavailableError as exc:\n"
        "    print('unavailable', exc.code, exc)\n"
    )
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("unavailable 12 nvmlInit: NVML error 12")


def test_a_library_path_that_does_not_exist(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path\n"
        "from gpu.nvml import PynvmlNvml\n"
        "from gpu.errors import NvmlUnavailableError\n"
        "try:\n"
        f"    PynvmlNvml(Path({str(tmp_path / 'missing.so')!r})).open()\n"
        "except NvmlUnavailableError as exc:\n"
        "    print('unavailable', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("unavailable ")
    assert "cannot load NVML" in out.stdout


def test_translate_error_codes() -> None:
    import pynvml

    assert isinstance(translate(pynvml.NVMLError(15), "x"), DeviceLostError)
    assert isinstance(translate(pynvml.NVMLError(12), "x"), NvmlUnavailableError)
    other = translate(pynvml.NVMLError(3), "x")
    assert type(other) is NvmlError
    assert other.code == 3
