"""GPU test fixtures: the fake NVML library (built with gcc), its data file, short socket dirs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gpu.nvml import PynvmlNvml
from tests.gpu.fakes import FakeKubelet, FakeNvmlData

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def fake_nvml_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``libnvidia-ml.so.1`` compiled from ``fake_nvml.c``, once per session."""
    out = tmp_path_factory.mktemp("fake-nvml") / "libnvidia-ml.so.1"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Werror",
            "-o",
            str(out),
            str(HERE / "fake_nvml.c"),
        ],
        check=True,
    )
    return out


@pytest.fixture
def nvml_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvmlData:
    """The fake NVML's data file, pre-filled with :meth:`FakeNvmlData.standard`."""
    data = FakeNvmlData(tmp_path / "nvml.txt")
    monkeypatch.setenv("FAKE_NVML_DATA", str(data.path))
    return data.standard()


@pytest.fixture
def nvml(fake_nvml_library: Path, nvml_data: FakeNvmlData) -> Iterator[PynvmlNvml]:
    with PynvmlNvml(fake_nvml_library) as opened:
        yield opened


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="kpg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def kubelet(short_dir: Path) -> AsyncIterator[FakeKubelet]:
    plugin_dir = short_dir / "device-plugins"
    plugin_dir.mkdir()
    fake = await FakeKubelet(plugin_dir).start()
    yield fake
    await fake.stop()
