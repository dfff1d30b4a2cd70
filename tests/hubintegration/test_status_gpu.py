"""The status extension's GPU reading against the real GPU node daemon (``gpu.daemon``), served
on a unix socket over the fake NVML library, as the GPU tests run it (their fixtures)."""

from __future__ import annotations

import os

from hubintegration.status import MIB, GpuDaemon, Usage
from tests.gpu import conftest as gpu_fixtures

# The GPU tests' fixtures: a node with pods "big" (1 share, annotation limit 2) and "small".
fake_nvml_library = gpu_fixtures.fake_nvml_library
nvml_data = gpu_fixtures.nvml_data
nvml = gpu_fixtures.nvml
short_dir = gpu_fixtures.short_dir
node = gpu_fixtures.node


async def test_gpu_memory_of_the_calling_pod(node: gpu_fixtures.Node) -> None:
    node.place(os.getpid(), "big")
    assert await GpuDaemon(node.socket).read() == Usage(1000 * MIB, 40960 * MIB)
    node.place(os.getpid(), "small")
    small = await GpuDaemon(node.socket).read()
    assert small is not None
    assert small.used == 500 * MIB
    node.place(os.getpid(), None)  # a process of no pod gets nothing (the daemon says 401)
    assert await GpuDaemon(node.socket).read() is None
