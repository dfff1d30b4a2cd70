"""Errors raised by :mod:`gpu`.

The tree::

    GpuError                         base; never raised itself
    ├── NvmlError                    an NVML call failed; ``code`` is NVML's return code
    │   ├── NvmlUnavailableError     the library is missing or the driver is not loaded
    │   └── DeviceLostError          the GPU fell off the bus / answers no more (unhealthy)
    ├── ConfigError                  the sharing configuration is invalid
    ├── AllocationError              a device request cannot be satisfied
    │   ├── UnknownDeviceError       a meta-device ID that this plugin never advertised
    │   └── CannotFitError           not enough free shares, or a no-split request would split
    ├── KubeletError                 the kubelet's gRPC API (registration, pod-resources) failed
    ├── KubernetesApiError           the Kubernetes API (pods, events) failed
    ├── DaemonError                  an answer of the node daemon API; ``status`` as in HTTP
    │   ├── CallerUnknownError       401: the connection maps to no pod on this node
    │   └── ForbiddenError           403: the caller asks about another pod, or an admin view
    └── DaemonUnavailableError       the node daemon socket cannot be reached (client side)

Third-party exceptions (``pynvml.NVMLError``, ``grpc.RpcError``, ``httpx.HTTPError``) are
translated where they are caught, with ``raise ... from exc``. Messages never carry the admin
credential.
"""

from __future__ import annotations


class GpuError(Exception):
    """Base of every error raised by :mod:`gpu`."""


class NvmlError(GpuError):
    """An NVML call failed. ``code`` is NVML's ``nvmlReturn_t`` (0 when unknown)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class NvmlUnavailableError(NvmlError):
    """``libnvidia-ml.so.1`` cannot be loaded, or no driver answers."""


class DeviceLostError(NvmlError):
    """The GPU is lost (``NVML_ERROR_GPU_IS_LOST``) or needs a reset; report it unhealthy."""


class ConfigError(GpuError):
    """The sharing configuration (YAML) is invalid."""


class AllocationError(GpuError):
    """A preferred allocation or an Allocate request cannot be satisfied."""


class UnknownDeviceError(AllocationError):
    """A device ID that is not one of this plugin's meta-devices."""


class CannotFitError(AllocationError):
    """Too few free shares, or a ``no-split`` request would span several devices."""


class KubeletError(GpuError):
    """The kubelet's registration or pod-resources gRPC API failed."""


class KubernetesApiError(GpuError):
    """The Kubernetes API (pod list, events) failed or answered with an error status."""


class DaemonError(GpuError):
    """An error answer of the node daemon API; ``status`` follows HTTP."""

    status: int = 500


class CallerUnknownError(DaemonError):
    status = 401


class ForbiddenError(DaemonError):
    status = 403


class DaemonUnavailableError(GpuError):
    """The node daemon's unix socket cannot be reached (raised by clients such as mgctl)."""
