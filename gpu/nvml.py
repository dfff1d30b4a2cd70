"""The NVML adapter: the only module that imports ``pynvml`` (nvidia-ml-py).

:class:`Nvml` is the small Protocol the rest of :mod:`gpu` codes against; :class:`PynvmlNvml`
implements it over the real library. NVML calls are local ioctls that answer in microseconds,
so they are made synchronously; a device that is lost is reported as unhealthy rather than
failing the whole listing. NVML errors become :mod:`gpu.errors` exceptions here.

``library`` loads a specific ``libnvidia-ml.so.1`` (a driver installed outside the loader
path, or a test double); without it pynvml searches the loader path on ``nvmlInit``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pynvml

from gpu.errors import DeviceLostError, NvmlError, NvmlUnavailableError
from gpu.models import GpuDevice, GpuProcess

_UNAVAILABLE = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
    pynvml.NVML_ERROR_UNINITIALIZED,
}
_LOST = {pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED}
_NO_INSTANCE = 0xFFFFFFFF


class Nvml(Protocol):
    """What the device plugin, the enforcer and the exporter need from NVML."""

    def devices(self) -> list[GpuDevice]:
        """Schedulable devices: whole GPUs, or the MIG instances of GPUs in MIG mode."""
        ...

    def processes(self) -> list[GpuProcess]:
        """Compute processes with the memory they hold, per device (host PIDs)."""
        ...


def translate(exc: Exception, what: str) -> NvmlError:
    """Map a ``pynvml.NVMLError`` (or a loader ``OSError``) to our error tree."""
    if isinstance(exc, OSError):
        return NvmlUnavailableError(f"{what}: cannot load NVML: {exc}")
    code = int(getattr(exc, "value", 0) or 0)
    message = f"{what}: NVML error {code}: {exc}"
    if code in _UNAVAILABLE:
        return NvmlUnavailableError(message, code)
    if code in _LOST:
        return DeviceLostError(message, code)
    return NvmlError(message, code)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PynvmlNvml:
    """:class:`Nvml` over nvidia-ml-py. Use as a context manager, or call open()/close()."""

    _load_lock = threading.Lock()

    def __init__(self, library: Path | None = None) -> None:
        self.nvml_path = library
        self._open = False

    def open(self) -> PynvmlNvml:
        if self.nvml_path is not None:
            with self._load_lock:
                try:
                    if pynvml.nvmlLib is None:
                        pynvml.nvmlLib = ctypes.CDLL(str(self.nvml_path))
                except OSError as exc:
                    raise translate(exc, str(self.nvml_path)) from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise translate(exc, "nvmlInit") from exc
        self._open = True
        return self

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as exc:
                raise translate(exc, "nvmlShutdown") from exc

    def __enter__(self) -> PynvmlNvml:
        return self.open()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def driver_version(self) -> str:
        try:
            return _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as exc:
            raise translate(exc, "driver version") from exc

    # -- devices -------------------------------------------------------------------------

    def _gpu_handles(self) -> Iterator[tuple[int, Any]]:
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise translate(exc, "device count") from exc
        for index in range(count):
            try:
                yield index, pynvml.nvmlDeviceGetHandleByIndex(index)
            except pynvml.NVMLError as exc:
                if translate(exc, "").code in _UNAVAILABLE:
                    raise translate(exc, f"device {index}") from exc
                # A device that cannot even be opened is left out; the plugin marks its
                # meta-devices unhealthy because they disappear from the listing.

    def _mig_handles(self, gpu: Any) -> list[Any]:
        try:
            current, _pending = pynvml.nvmlDeviceGetMigMode(gpu)
        except pynvml.NVMLError:
            return []  # NOT_SUPPORTED on GPUs without MIG
        if current != pynvml.NVML_DEVICE_MIG_ENABLE:
            return []
        handles = []
        try:
            slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(gpu)
        except pynvml.NVMLError as exc:
            raise translate(exc, "MIG device count") from exc
        for slot in range(slots):
            try:
                handles.append(pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, slot))
            except pynvml.NVMLError as exc:
                if exc.value != pynvml.NVML_ERROR_NOT_FOUND:
                    raise translate(exc, f"MIG device {slot}") from exc
        return handles

    def _describe(self, index: int, handle: Any, parent_uuid: str | None) -> GpuDevice:
        try:
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            name = _text(pynvml.nvmlDeviceGetName(handle))
        except pynvml.NVMLError as exc:
            raise translate(exc, f"device {index}") from exc
        gi = ci = None
        if parent_uuid is not None:
            try:
                gi = int(pynvml.nvmlDeviceGetGpuInstanceId(handle))
                ci = int(pynvml.nvmlDeviceGetComputeInstanceId(handle))
            except pynvml.NVMLError as exc:
                raise translate(exc, f"MIG instance of {parent_uuid}") from exc
        try:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except pynvml.NVMLError as exc:
            error = translate(exc, uuid)
            if not isinstance(error, DeviceLostError):
                raise error from exc
            return GpuDevice(index, uuid, name, 0, 0, False, None, parent_uuid, gi, ci)
        utilization: int | None = None
        if parent_uuid is None:
            try:
                utilization = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                utilization = None
        return GpuDevice(
            index,
            uuid,
            name,
            int(memory.total),
            int(memory.used),
            True,
            utilization,
            parent_uuid,
            gi,
            ci,
        )

    def devices(self) -> list[GpuDevice]:
        found: list[GpuDevice] = []
        for index, gpu in self._gpu_handles():
            migs = self._mig_handles(gpu)
            if not migs:
                found.append(self._describe(index, gpu, None))
                continue
            try:
                parent_uuid = _text(pynvml.nvmlDeviceGetUUID(gpu))
            except pynvml.NVMLError as exc:
                raise translate(exc, f"device {index}") from exc
            found.extend(self._describe(index, mig, parent_uuid) for mig in migs)
        return found

    # -- processes -----------------------------------------------------------------------

    def _processes_on(self, handle: Any, uuid: str) -> list[GpuProcess]:
        try:
            infos = pynvml.nvmlDeviceGetComputeRunningProcesses_v3(handle)
        except pynvml.NVMLError as exc:
            error = translate(exc, uuid)
            if isinstance(error, DeviceLostError):
                return []
            raise error from exc
        processes = []
        for info in infos:
            gi = info.gpuInstanceId
            processes.append(
                GpuProcess(
                    pid=int(info.pid),
                    device_uuid=uuid,
                    used_memory=int(info.usedGpuMemory or 0),
                    gpu_instance_id=None if gi in (None, _NO_INSTANCE) else int(gi),
                )
            )
        return processes

    def processes(self) -> list[GpuProcess]:
        found: list[GpuProcess] = []
        for _index, gpu in self._gpu_handles():
            migs = self._mig_handles(gpu)
            for handle in migs or [gpu]:
                try:
                    uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
                except pynvml.NVMLError as exc:
                    raise translate(exc, "device uuid") from exc
                found.extend(self._processes_on(handle, uuid))
        return found
