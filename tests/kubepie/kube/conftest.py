"""Fixtures of the Kubernetes tests: one real control plane per test session (see
:mod:`tests.kubepie.kube.controlplane`), the FileServer CRD applied to it, and API clients for
the admin and for ``alice``, a user without RBAC grants."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubepie.kube.client import KubeApi, connect
from kubepie.kube.errors import NotFound
from tests.kubepie.kube.controlplane import ROOT, ControlPlane, binaries
from tests.support import ManagedProcess

CRD_FILE = Path(__file__).resolve().parents[3] / "charts" / "kubepie" / "crds" / "fileserver.yaml"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    workdir = Path(tempfile.mkdtemp(prefix="kubepie-k8s-", dir="/tmp"))
    workdir.chmod(0o755)
    plane = ControlPlane(workdir, binaries())
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
async def kube_admin(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    api = connect(control_plane.admin_kubeconfig)
    try:
        yield api
    finally:
        await api.aclose()


@pytest.fixture(scope="session")
async def kube_alice(control_plane: ControlPlane) -> AsyncIterator[KubeApi]:
    api = connect(control_plane.alice_kubeconfig)
    try:
        yield api
    finally:
        await api.aclose()


async def make_namespace(api: KubeApi, name: str, labels: dict[str, str] | None = None) -> str:
    """Create namespace ``name`` and wait for its ``default`` ServiceAccount (made by the
    controller-manager; until then v1.20's ServiceAccount admission refuses every Pod)."""
    await api.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})
    for _ in range(600):
        try:
            account = await api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
        except NotFound:
            account = {}
        if account.get("secrets"):
            return name
        await asyncio.sleep(0.1)
    raise TimeoutError(f"namespace {name}: no default ServiceAccount after 60 s")


@pytest.fixture(scope="session")
async def fileserver_crd(control_plane: ControlPlane, kube_admin: KubeApi) -> str:
    """The FileServer CRD applied with kubectl and Established."""
    kubectl = [str(control_plane.kubectl), f"--kubeconfig={control_plane.admin_kubeconfig}"]
    for argv in (
        [*kubectl, "apply", "-f", str(CRD_FILE)],
        [
            *kubectl,
            "wait",
            "--for=condition=Established",
            "crd/fileservers.kubepie.io",
            "--timeout=60s",
        ],
    ):
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
    return "fileservers.kubepie.io"


@dataclass
class Kubelet:
    """The process kubelet (:mod:`tests.fixtures.process_kubelet`) serving one Node."""

    node: str
    workdir: Path
    proc: ManagedProcess

    def container_log(self, namespace: str, name: str) -> str:
        """The output of the Pod ``namespace/name`` (its newest incarnation)."""
        logs = sorted(
            (self.workdir / "pods").glob(f"{namespace}_{name}_*/container.log"),
            key=lambda p: p.stat().st_mtime,
        )
        return logs[-1].read_text() if logs else ""


@pytest.fixture(scope="session")
async def process_kubelet(
    control_plane: ControlPlane, kube_admin: KubeApi
) -> AsyncIterator[Kubelet]:
    """One Node, ``process-node``, whose Pods run as local processes on 127.0.10.x."""
    workdir = control_plane.workdir / "kubelet"
    workdir.mkdir()
    proc = ManagedProcess(
        "process-kubelet",
        [
            sys.executable,
            "-m",
            "tests.fixtures.process_kubelet",
            f"--kubeconfig={control_plane.admin_kubeconfig}",
            "--node=process-node",
            "--subnet=10",
            f"--workdir={workdir}",
            f"--path={Path(sys.executable).parent}",
        ],
        control_plane.workdir / "logs" / "process-kubelet.log",
        cwd=ROOT,
    ).start()
    try:
        proc.wait_until(lambda: "ready" in proc.log_tail(), 60, "node registered")
        for _ in range(600):
            node = await kube_admin.get("/api/v1/nodes/process-node")
            ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
            taints = node["spec"].get("taints") or []
            if ready and ready[0]["status"] == "True" and not taints:
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError(f"process-node not Ready and untainted: {node}")
        yield Kubelet("process-node", workdir, proc)
    finally:
        proc.stop(timeout=20)
