"""Benchmark first-request latency: the kubernetes backend next to the local backend.

Starts the real control plane of the tests (etcd, kube-apiserver, controller-manager,
scheduler from ``scripts/k8s-testenv``), the process kubelet (the test double running Pods as
local processes), ``kubepie operator`` with its admission webhook, then asks each backend for
``--users`` servers, one new user after another, and times ``ensure`` (FileServer created,
webhook, scheduler, Pod started, ready probe, status, key read) plus the first GET through
the returned address. Prints one line per backend: p50 / max in ms over the users.

Usage (as root): ``python -m benchmarks.kubernetes [--users 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from identity.models import Identity
from identity.storage import MountSpec
from kubepie.backends.base import Upstream
from kubepie.backends.kubernetes import KubernetesBackend
from kubepie.backends.local import LocalBackend
from kubepie.kube.client import connect
from kubepie.settings.models import BackendSettings, KubernetesBackendSettings
from tests.kubepie.kube.conftest import make_namespace, webhook_active
from tests.kubepie.kube.controlplane import ROOT, ControlPlane, binaries
from tests.support import ManagedProcess, free_port

FIRST_UID = 41001


async def first_get(upstream: Upstream) -> None:
    headers = {"X-KubePie-Server-Secret": upstream.secret}
    if upstream.address.startswith("unix:"):
        transport = httpx.AsyncHTTPTransport(uds=upstream.address.removeprefix("unix:"))
        base = "http://fs"
    else:
        transport = httpx.AsyncHTTPTransport()
        base = f"http://{upstream.address}"
    async with httpx.AsyncClient(base_url=base, transport=transport, headers=headers) as http:
        answer = await http.get("/dav/home/hello.txt")
        assert answer.status_code == 200, answer.status_code


async def measure(backend: KubernetesBackend | LocalBackend, people: list[Identity]) -> list[float]:
    latencies = []
    for who in people:
        began = time.perf_counter()
        await first_get(await backend.ensure(who))
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def line(name: str, values: list[float]) -> str:
    return (
        f"first request, {name}: p50 {statistics.median(values):.0f} ms, "
        f"max {max(values):.0f} ms (n={len(values)})"
    )


async def run(users: int, area: Path) -> list[str]:
    people = [
        Identity("bench", f"u{uid}", f"u{uid}", uid, uid, (uid,))
        for uid in range(FIRST_UID, FIRST_UID + 2 * users)
    ]
    for who in people:
        home = area / "home" / who.username
        home.mkdir(parents=True)
        (home / "hello.txt").write_text("hello\n")
        for path in (home, home / "hello.txt"):
            os.chown(path, who.uid, who.gid)
        home.chmod(0o700)
    mounts = (MountSpec("home", str(area / "home" / "{username}")),)

    local = LocalBackend(
        BackendSettings(idle_timeout=3600, max_servers=2 * users), mounts, area / "state"
    )
    try:
        await local.start()
        local_ms = await measure(local, people[:users])
    finally:
        await local.aclose()

    plane = ControlPlane(area / "k8s", binaries())
    processes: list[ManagedProcess] = []
    try:
        plane.start()
        admin = connect(plane.admin_kubeconfig)
        await make_namespace(admin, "kubepie")
        kubectl = [str(plane.kubectl), f"--kubeconfig={plane.admin_kubeconfig}"]
        crd = ROOT / "charts" / "kubepie" / "crds" / "fileserver.yaml"
        for argv in (
            [*kubectl, "apply", "-f", str(crd)],
            [*kubectl, "wait", "--for=condition=Established", "crd/fileservers.kubepie.io"],
        ):
            step = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
            assert await step.wait() == 0
        kubelet = ManagedProcess(
            "process-kubelet",
            [
                sys.executable,
                "-m",
                "tests.fixtures.process_kubelet",
                f"--kubeconfig={plane.admin_kubeconfig}",
                "--node=bench-node",
                "--subnet=11",
                f"--workdir={area / 'kubelet'}",
                f"--path={Path(sys.executable).parent}",
            ],
            area / "logs" / "kubelet.log",
            cwd=ROOT,
        ).start()
        processes.append(kubelet)
        directory = {
            "users": {w.username: {"uid": w.uid, "gid": w.gid, "home": "/"} for w in people},
            "groups": {w.username: {"gid": w.gid} for w in people},
        }
        (area / "directory.yaml").write_text(yaml.safe_dump(directory))
        config = {
            "namespace": "kubepie",
            "kubeconfig": str(plane.admin_kubeconfig),
            "identity": {"source": "static", "static_file": str(area / "directory.yaml")},
            "mounts": [{"name": "home", "path": str(area / "home" / "{username}")}],
            "nss_configmap": None,
            "webhook": {
                "listen_host": "127.0.0.1",
                "port": free_port(),
                "url_host": "127.0.0.1",
                "cert_dir": str(area / "webhook"),
                "operator_users": ["admin"],
            },
        }
        (area / "operator.yaml").write_text(yaml.safe_dump(config))
        operator = ManagedProcess(
            "kubepie-operator",
            [
                sys.executable,
                "-m",
                "kubepie.cli",
                "operator",
                "--config",
                str(area / "operator.yaml"),
            ],
            area / "logs" / "operator.log",
            cwd=ROOT,
        ).start()
        processes.append(operator)
        await webhook_active(admin, "kubepie")
        settings = BackendSettings(
            kind="kubernetes",
            start_timeout=120,
            kubernetes=KubernetesBackendSettings(kubeconfig=plane.admin_kubeconfig),
        )
        kube = KubernetesBackend(settings, mounts, connect(plane.admin_kubeconfig))
        try:
            kube_ms = await measure(kube, people[users:])
        finally:
            await kube.aclose()
            await admin.aclose()
    finally:
        for started in reversed(processes):
            started.stop(timeout=20)
        plane.stop()
    return [line("local backend", local_ms), line("kubernetes backend", kube_ms)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: each user's server runs as that user", file=sys.stderr)
        return 2
    area = Path(tempfile.mkdtemp(prefix="kubepie-bench-k8s-", dir="/tmp"))
    area.chmod(0o755)
    (area / "logs").mkdir()
    try:
        for text in asyncio.run(run(args.users, area)):
            print(text)
    finally:
        shutil.rmtree(area, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
