"""``scripts/gpu-check`` without a GPU: against the fake NVML and a fake ``libcuda.so.1``.

On a GPU machine the script runs against the real driver; here the fake CUDA library records
each allocation in the fake NVML's data file, so the script's whole path (enumerate, allocate
in a child, attribute, leave alone, stop) runs, and its failure path without any NVML library
is checked too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gpu.fakes import H100

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check"


@pytest.fixture(scope="module")
def fake_driver_dir(fake_nvml_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fake-driver")
    shutil.copy(fake_nvml_library, out / "libnvidia-ml.so.1")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(out / "libcuda.so.1"),
         str(Path(__file__).with_name("fake_cuda.c"))],
        check=True,
    )  # fmt: skip
    return out


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )


def test_gpu_check_passes_on_the_fake_driver(fake_driver_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "nvml.txt"
    data.write_text(f"live_only\ngpu 0 {H100} 81920 0 5 0 0 NVIDIA H100 80GB HBM3\n")
    env = dict(os.environ, LD_LIBRARY_PATH=str(fake_driver_dir), FAKE_NVML_DATA=str(data))
    result = run_check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    assert "PASS  enforcer stops it with SIGTERM: actions ['term'], exit -15" in lines
    assert "PASS  above its request, under its annotated limit: left alone" in result.stdout
    assert lines[-1] == "PASS  gpu-check: 12/12 checks passed"


def test_gpu_check_fails_clearly_without_nvml(tmp_path: Path) -> None:
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    env.pop("FAKE_NVML_DATA", None)
    result = run_check(env)
    assert result.returncode == 1
    assert "FAIL  NVML: no NVIDIA driver or libnvidia-ml.so.1 on this machine" in result.stdout
    assert "NVML Shared Library Not Found" in result.stdout


def test_gpu_check_fails_clearly_without_cuda(fake_nvml_library: Path, tmp_path: Path) -> None:
    data = tmp_path / "nvml.txt"
    data.write_text(f"gpu 0 {H100} 81920 0 5 0 0 NVIDIA H100 80GB HBM3\n")
    env = dict(os.environ, LD_LIBRARY_PATH=str(fake_nvml_library.parent), FAKE_NVML_DATA=str(data))
    result = run_check(env)
    assert result.returncode == 1
    assert "FAIL  start a CUDA child: NOBACKEND cuda_driver:" in result.stdout
