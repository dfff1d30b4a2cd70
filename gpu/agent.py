"""The GPU node agent: one process per GPU node (a DaemonSet with ``hostPID``) running

* one device plugin per sharing entry (:mod:`gpu.deviceplugin`);
* the monitor's refresh of pods (Kubernetes API) and meta-devices (pod-resources API);
* the enforcer (:mod:`gpu.enforcer`), recording Kubernetes Events;
* the node daemon API on its unix socket (:mod:`gpu.daemon`);
* the Prometheus exporter on ``metrics_host:metrics_port`` (:mod:`gpu.exporter`).

:class:`Agent` wires them explicitly; :func:`main` is the entry point
(``kubepie-gpu-agent --config /etc/kubepie-gpu/config.yaml``, node name from ``$NODE_NAME``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from gpu.cgroups import ProcCgroupReader
from gpu.config import GpuConfig, load_config
from gpu.daemon import Daemon, read_admin_token
from gpu.deviceplugin import build_plugins
from gpu.enforcer import Enforcer, EnforcerMetrics
from gpu.errors import GpuError
from gpu.exporter import GpuCollector, serve_metrics
from gpu.kube import KubernetesEvents, KubernetesPods, in_cluster
from gpu.monitor import Monitor
from gpu.nvml import Nvml, PynvmlNvml
from gpu.podresources import PodResourcesClient

log = logging.getLogger(__name__)


class Agent:
    def __init__(
        self,
        config: GpuConfig,
        nvml: Nvml,
        kube: httpx.AsyncClient,
        node_name: str,
        registry: CollectorRegistry,
        *,
        watch_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        resolver = ProcCgroupReader(config.proc_root)
        self.monitor = Monitor(
            nvml,
            resolver,
            KubernetesPods(kube, node_name),
            PodResourcesClient(config.pod_resources_socket),
            [entry.resource for entry in config.sharing],
        )
        self.plugins = build_plugins(config, nvml, watch_interval_s=watch_interval_s)
        self.enforcer = Enforcer(
            self.monitor,
            config.enforcer,
            KubernetesEvents(kube, node_name),
            EnforcerMetrics(registry),
        )
        self.daemon = Daemon(
            self.monitor,
            resolver,
            admin_token=read_admin_token(config.admin_token_file),
            proc_root=config.proc_root,
        )
        self.registry = registry
        registry.register(GpuCollector(self.monitor))

    async def run(self) -> None:
        """Run every part until cancelled."""
        server = await self.daemon.serve(self.config.daemon_socket)
        http, thread = serve_metrics(
            self.registry, self.config.metrics_host, self.config.metrics_port
        )
        log.info("GPU agent up: %d device plugins", len(self.plugins))
        try:
            async with asyncio.TaskGroup() as group:
                for plugin in self.plugins:
                    group.create_task(plugin.run())
                group.create_task(self.enforcer.run())
                group.create_task(server.serve_forever())
        finally:
            server.close()
            http.shutdown()
            http.server_close()
            thread.join(5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubepie-gpu-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="sharing configuration YAML")
    parser.add_argument("--node-name", default=os.environ.get("NODE_NAME"), help="$NODE_NAME")
    parser.add_argument("--nvml-library", type=Path, help="libnvidia-ml.so.1 to load")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.node_name:
        parser.error("--node-name or $NODE_NAME is required")
    try:
        config = load_config(args.config)
        with PynvmlNvml(args.nvml_library) as nvml:
            asyncio.run(_serve(config, nvml, args.node_name))
    except GpuError as exc:
        print(f"kubepie-gpu-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


async def _serve(config: GpuConfig, nvml: Nvml, node_name: str) -> None:
    async with in_cluster() as kube:
        agent = Agent(config, nvml, kube, node_name, CollectorRegistry())
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run()


if __name__ == "__main__":
    sys.exit(main())
