"""The kubelet device plugin (API v1beta1): one gRPC server per sharing entry.

Each :class:`DevicePlugin` serves the ``DevicePlugin`` service on its own unix socket in the
kubelet's device plugin directory, and registers that socket with the kubelet's
``Registration`` service on ``kubelet.sock``. A restarting kubelet deletes every socket in the
directory; the plugin polls for that (its own socket gone, or ``kubelet.sock`` replaced by a
new inode), then serves again and registers again.

``ListAndWatch`` streams the meta-devices of the entry's devices and sends a new list whenever
their health changes; a device that NVML reports lost, or that disappears, turns its shares
``Unhealthy``. ``GetPreferredAllocation`` applies the entry's strategy
(:mod:`gpu.allocation`); ``Allocate`` answers:

* ``NVIDIA_VISIBLE_DEVICES``: the device UUIDs (GPU or MIG UUIDs). For MIG instances the
  NVIDIA container toolkit mounts the instance's capability devices from these UUIDs.
  ``NVIDIA_MIG_CONFIG_DEVICES`` is never set (it would let a container reconfigure MIG for
  everybody) nor ``NVIDIA_MIG_MONITOR_DEVICES`` (it would show every pod's instances);
  ``KUBEPIE_GPU_MIG_INSTANCES`` lists ``<gpu uuid>:<gpu instance id>`` for information.
* ``KUBEPIE_GPU_RESOURCE``, ``KUBEPIE_GPU_SHARES``, ``KUBEPIE_GPU_DEVICE_IDS``;
* ``KUBEPIE_GPU_MEMORY_GUARANTEE_MB`` and ``KUBEPIE_GPU_MEMORY_LIMIT_MB``: Allocate never sees
  the pod, so the limit given here is the guarantee; a ``gpu-mem-limit.<resource>`` annotation
  raises the limit the node daemon enforces and reports (``mgctl``, ``nvidia-smi`` wrapper);
* ``KUBEPIE_GPU_DAEMON_SOCKET`` and a read-only mount of the node daemon's socket directory.

One of the two modules that import ``grpc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from gpu._proto import deviceplugin_v1beta1_pb2 as pb
from gpu._proto import deviceplugin_v1beta1_pb2_grpc as pb_grpc
from gpu.allocation import check_allocation, preferred_allocation
from gpu.config import GpuConfig, SharingEntry, Strategy
from gpu.errors import AllocationError, CannotFitError, GpuError, KubeletError, NvmlError
from gpu.metadevices import Inventory, build_inventory, guarantee_bytes, parse_id
from gpu.models import MIB, GpuDevice
from gpu.nvml import Nvml

log = logging.getLogger(__name__)

API_VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"


def socket_name(resource: str) -> str:
    """The plugin's socket file name for ``resource`` (``kubepie.io/gpu`` → ``kubepie-io-gpu``)."""
    safe = "".join(c if c.isalnum() else "-" for c in resource)
    return f"kubepie-{safe}.sock"


def device_health(
    previous: Mapping[str, bool], inventory: Inventory, devices: Mapping[str, GpuDevice]
) -> dict[str, bool]:
    """Health per meta-device ID: current shares by their device's health; shares advertised
    before whose device is gone or lost stay listed, unhealthy (pure)."""
    health = {
        str(meta): devices[meta.uuid].healthy if meta.uuid in devices else False
        for meta in inventory.ids
    }
    for device_id in previous:
        health.setdefault(device_id, False)
    return health


@dataclass(frozen=True)
class AllocationContext:
    """What Allocate needs besides the device IDs."""

    resource: str
    strategy: Strategy
    daemon_socket: Path
    daemon_dir_in_container: Path


def allocate_response(
    device_ids: list[str], context: AllocationContext, devices: Mapping[str, GpuDevice]
) -> pb.ContainerAllocateResponse:
    """The answer to one container's Allocate request (pure)."""
    check_allocation(device_ids, context.strategy)
    metas = [parse_id(i) for i in device_ids]
    uuids = list(dict.fromkeys(m.uuid for m in metas))
    unknown = [u for u in uuids if u not in devices]
    if unknown:
        raise AllocationError(f"devices not served by this plugin: {', '.join(unknown)}")
    guarantee_mb = guarantee_bytes(device_ids) // MIB
    migs = [devices[u] for u in uuids if devices[u].is_mig]
    socket_in_container = context.daemon_dir_in_container / context.daemon_socket.name
    envs = {
        "NVIDIA_VISIBLE_DEVICES": ",".join(uuids),
        "KUBEPIE_GPU_RESOURCE": context.resource,
        "KUBEPIE_GPU_SHARES": str(len(device_ids)),
        "KUBEPIE_GPU_DEVICE_IDS": ",".join(device_ids),
        "KUBEPIE_GPU_MEMORY_GUARANTEE_MB": str(guarantee_mb),
        "KUBEPIE_GPU_MEMORY_LIMIT_MB": str(guarantee_mb),
        "KUBEPIE_GPU_DAEMON_SOCKET": str(socket_in_container),
    }
    if migs:
        envs["KUBEPIE_GPU_MIG_INSTANCES"] = ",".join(
            f"{d.parent_uuid}:{d.gpu_instance_id}" for d in migs
        )
    mount = pb.Mount(
        container_path=str(context.daemon_dir_in_container),
        host_path=str(context.daemon_socket.parent),
        read_only=True,
    )
    return pb.ContainerAllocateResponse(envs=envs, mounts=[mount])


class DevicePlugin:
    """The device plugin of one sharing entry; :meth:`run` serves and registers until cancelled."""

    def __init__(
        self,
        config: GpuConfig,
        entry: SharingEntry,
        nvml: Nvml,
        *,
        watch_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        self.entry = entry
        self.nvml = nvml
        self.watch_interval_s = watch_interval_s
        self.plugin_dir = config.device_plugin_dir
        self.socket_path = self.plugin_dir / socket_name(entry.resource)
        self._health: dict[str, bool] = {}
        self._devices: dict[str, GpuDevice] = {}
        self._changed = asyncio.Event()
        self._context = AllocationContext(
            entry.resource, entry.strategy, config.daemon_socket, config.daemon_dir_in_container
        )

    # -- device state --------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read NVML and update the advertised devices; True when the list changed."""
        try:
            devices = self.nvml.devices()
        except NvmlError as exc:
            log.warning("%s: NVML failed, all shares unhealthy: %s", self.entry.resource, exc)
            health = dict.fromkeys(self._health, False)
        else:
            self._devices = {d.uuid: d for d in devices}
            inventory = build_inventory(self.config, self.entry, devices)
            health = device_health(self._health, inventory, self._devices)
        if health == self._health:
            return False
        self._health = health
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    def listing(self) -> pb.ListAndWatchResponse:
        return pb.ListAndWatchResponse(
            devices=[
                pb.Device(ID=device_id, health=HEALTHY if ok else UNHEALTHY)
                for device_id, ok in self._health.items()
            ]
        )

    # -- DevicePlugin service ------------------------------------------------------------

    async def GetDevicePluginOptions(self, request: pb.Empty, context: Any) -> Any:
        return pb.DevicePluginOptions(
            pre_start_required=False, get_preferred_allocation_available=True
        )

    async def ListAndWatch(
        self, request: pb.Empty, context: Any
    ) -> AsyncIterator[pb.ListAndWatchResponse]:
        while True:
            changed = self._changed
            yield self.listing()
            await changed.wait()

    async def GetPreferredAllocation(
        self, request: pb.PreferredAllocationRequest, context: Any
    ) -> Any:
        responses = []
        for container in request.container_requests:
            try:
                ids = preferred_allocation(
                    list(container.available_deviceIDs),
                    list(container.must_include_deviceIDs),
                    container.allocation_size,
                    self.entry.strategy,
                )
            except CannotFitError as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            except AllocationError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            responses.append(pb.ContainerPreferredAllocationResponse(deviceIDs=ids))
        return pb.PreferredAllocationResponse(container_responses=responses)

    async def Allocate(self, request: pb.AllocateRequest, context: Any) -> Any:
        responses = []
        for container in request.container_requests:
            ids = list(container.devices_ids)
            unknown = [i for i in ids if i not in self._health]
            if unknown:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"unknown device IDs: {', '.join(unknown)}"
                )
            try:
                responses.append(allocate_response(ids, self._context, self._devices))
            except CannotFitError as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            except AllocationError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.AllocateResponse(container_responses=responses)

    async def PreStartContainer(self, request: Any, context: Any) -> Any:
        return pb.PreStartContainerResponse()

    # -- serving and registration --------------------------------------------------------

    async def _serve(self) -> Any:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = grpc.aio.server()
        pb_grpc.add_DevicePluginServicer_to_server(self, server)
        server.add_insecure_port(f"unix://{self.socket_path}")
        await server.start()
        return server

    async def register(self) -> None:
        """One ``Register`` call to the kubelet; :class:`KubeletError` when it fails."""
        kubelet = self.plugin_dir / KUBELET_SOCKET
        request = pb.RegisterRequest(
            version=API_VERSION,
            endpoint=self.socket_path.name,
            resource_name=self.entry.resource,
            options=pb.DevicePluginOptions(get_preferred_allocation_available=True),
        )
        try:
            async with grpc.aio.insecure_channel(f"unix://{kubelet}") as channel:
                await pb_grpc.RegistrationStub(channel).Register(request, timeout=5)
        except grpc.RpcError as exc:
            raise KubeletError(f"Register {self.entry.resource} with {kubelet}: {exc}") from exc

    def _kubelet_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.plugin_dir / KUBELET_SOCKET)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_ctime_ns

    async def _register_until_done(self) -> tuple[int, int] | None:
        """Register once the kubelet is up; the kubelet socket's identity, or ``None`` when our
        own socket was deleted meanwhile (a starting kubelet deletes every socket in the
        directory, possibly the one we had just served): serve again before registering."""
        delay = self.watch_interval_s
        while True:
            identity = self._kubelet_identity()
            if identity is not None:
                if not self.socket_path.is_socket():
                    return None
                try:
                    await self.register()
                except KubeletError as exc:
                    log.warning("%s", exc)
                else:
                    log.info("registered %s at %s", self.entry.resource, self.socket_path)
                    return identity
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10 * self.watch_interval_s)

    async def _health_loop(self) -> None:
        while True:
            try:
                self.refresh()
            except GpuError as exc:  # keep watching; the last listing stays advertised
                log.warning("%s: device refresh failed: %s", self.entry.resource, exc)
            await asyncio.sleep(self.config.health_interval_s)

    async def _wait_for_restart(self, registered: tuple[int, int] | None) -> None:
        """Return once our socket is deleted or ``kubelet.sock`` is a new file."""
        while True:
            if not self.socket_path.exists() or self._kubelet_identity() != registered:
                return
            await asyncio.sleep(self.watch_interval_s)

    async def run(self) -> None:
        """Serve, register, and start over whenever the kubelet restarts; until cancelled."""
        self.refresh()  # the first ListAndWatch answer already lists the devices
        health = asyncio.create_task(self._health_loop())
        try:
            while True:
                server = await self._serve()
                try:
                    registered = await self._register_until_done()
                    if registered is None:
                        log.info("%s: socket deleted; serving again", self.entry.resource)
                        continue
                    await self._wait_for_restart(registered)
                    log.info(
                        "kubelet restarted or socket gone: registering %s again",
                        self.entry.resource,
                    )
                finally:
                    await server.stop(grace=None)
        finally:
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health


def build_plugins(config: GpuConfig, nvml: Nvml, **kwargs: Any) -> list[DevicePlugin]:
    return [DevicePlugin(config, entry, nvml, **kwargs) for entry in config.sharing]
