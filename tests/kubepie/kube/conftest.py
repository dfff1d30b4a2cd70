"""Fixtures of the Kubernetes tests: one real control plane per test session (see
:mod:`tests.kubepie.kube.controlplane`), the FileServer CRD applied to it, and API clients for
the admin and for ``alice``, a user without RBAC grants."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from identity.models import Identity
from kubepie.kube.client import KubeApi, connect
from kubepie.kube.errors import Forbidden, KubeError, NotFound
from tests.fixtures.oidc import OidcProvider
from tests.kubepie.kube.controlplane import ROOT, ControlPlane, binaries
from tests.kubepie.router import conftest as router_fixtures
from tests.kubepie.router.conftest import CLAIMS_IDENTITY, Router, start_router
from tests.support import ManagedProcess, free_port


@pytest.fixture(scope="session")
def router_area() -> Iterator[Path]:
    """Storage for the router with the kubernetes backend, laid out as the router tests' own
    (home, data, group areas) but separate from it, so neither sees the other's files."""
    area = Path(tempfile.mkdtemp(prefix="kubepie-k8s-router-", dir="/tmp"))
    area.chmod(0o755)
    router_fixtures._storage(area)
    try:
        yield area
    finally:
        shutil.rmtree(area, ignore_errors=True)


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


OPERATOR_NAMESPACE = "kubepie"
#: The static directory the operator reads: the test population of the OIDC provider.
DIRECTORY: dict[str, dict[str, dict[str, Any]]] = {
    "users": {
        name: {"uid": uid, "gid": uid, "home": f"/home/{name}"}
        for name, uid in (
            ("alice", 10001),
            ("bob", 10002),
            ("carol", 10003),
            ("dave", 10004),
            ("frank", 10006),
        )
    },
    "groups": {
        "alice": {"gid": 10001},
        "bob": {"gid": 10002},
        "carol": {"gid": 10003},
        "dave": {"gid": 10004},
        "frank": {"gid": 10006},
        "physics": {"gid": 20001, "members": ["alice", "bob"]},
        "beamline-x": {"gid": 20002, "members": ["alice", "carol"]},
    },
}


def directory_identity(user: str) -> Identity:
    """``user`` as the directory has them (what the webhook enforces)."""
    uid = DIRECTORY["users"][user]["uid"]
    groups = {
        name: entry["gid"]
        for name, entry in DIRECTORY["groups"].items()
        if name == user or user in entry.get("members", [])
    }
    return Identity("directory", user, user, uid, uid, tuple(groups.values()), tuple(groups))


@dataclass
class Operator:
    """``kubepie operator`` as a process, for FileServers in :data:`OPERATOR_NAMESPACE`."""

    namespace: str
    config: Path
    log: Path
    directory: Path
    proc: ManagedProcess | None = None

    def start(self) -> None:
        self.proc = ManagedProcess(
            "kubepie-operator",
            [sys.executable, "-m", "kubepie.cli", "operator", "--config", str(self.config)],
            self.log,
            cwd=ROOT,
        ).start()
        self.proc.wait_until(
            lambda: "Initial authentication has finished" in self.log_tail(8000),
            60,
            "kopf logged in",
        )

    def log_tail(self, limit: int = 4000) -> str:
        return self.proc.log_tail(limit) if self.proc else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=15)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
async def operator(
    control_plane: ControlPlane,
    kube_admin: KubeApi,
    fileserver_crd: str,
    process_kubelet: Kubelet,
    router_area: Path,
) -> AsyncIterator[Operator]:
    await make_namespace(kube_admin, OPERATOR_NAMESPACE)
    directory = control_plane.workdir / "directory.yaml"
    directory.write_text(yaml.safe_dump(DIRECTORY))
    config = control_plane.workdir / "operator.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "namespace": OPERATOR_NAMESPACE,
                "kubeconfig": str(control_plane.admin_kubeconfig),
                "identity": {"source": "static", "static_file": str(directory)},
                "pod": {"image": "kubepie:test", "image_pull_policy": "Never"},
                "reconcile_interval": 1,
                "nss_interval": 1,
                "idle_timeout": 600,
                "mounts": [
                    {"name": "home", "path": f"{control_plane.workdir}/storage/home/{{username}}"},
                    {"name": "rhome", "path": f"{router_area}/home/{{username}}"},
                    {"name": "data", "path": f"{router_area}/data", "read_only": True},
                    {"name": "group-{group}", "path": f"{router_area}/group/{{group}}"},
                ],
                "webhook": {
                    "listen_host": "127.0.0.1",
                    "port": free_port(),
                    "url_host": "127.0.0.1",
                    "cert_dir": str(control_plane.workdir / "webhook"),
                    "operator_users": ["admin"],
                    "hub_users": ["alice"],  # stands in for the Hub's ServiceAccount
                    "hub_label": "component=singleuser-server",
                    "configuration_name": "kubepie.io",
                },
            }
        )
    )
    handle = Operator(
        OPERATOR_NAMESPACE, config, control_plane.workdir / "logs" / "operator.log", directory
    )
    handle.start()
    await webhook_active(kube_admin, OPERATOR_NAMESPACE)
    try:
        yield handle
    finally:
        handle.stop()


async def webhook_active(api: KubeApi, namespace: str) -> None:
    """Wait until the apiserver calls the operator's webhook: a file-server Pod running as
    root is refused (kopf registers the configurations, and the apiserver picks them up,
    shortly after the operator starts)."""
    probe = {
        "metadata": {
            "name": "webhook-probe",
            "labels": {"kubepie.io/role": "fileserver", "kubepie.io/username": "alice"},
        },
        "spec": {
            "nodeName": "nowhere",
            "containers": [{"name": "c", "image": "none", "securityContext": {"runAsUser": 0}}],
        },
    }
    path = f"/api/v1/namespaces/{namespace}/pods"
    for _ in range(300):
        try:
            await api.create(path, probe)
        except Forbidden:
            return
        except KubeError:
            pass  # the webhook is registered but not listening yet
        else:
            await api.delete(f"{path}/webhook-probe", grace_seconds=0)
        await asyncio.sleep(0.2)
    raise TimeoutError("the admission webhook never refused a root file-server Pod")


ROUTER_ROLE = {
    "metadata": {"name": "kubepie-router"},
    "rules": [
        {
            "apiGroups": ["kubepie.io"],
            "resources": ["fileservers"],
            "verbs": ["get", "create", "patch"],
        },
        {"apiGroups": ["kubepie.io"], "resources": ["fileservers/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    ],
}


@pytest.fixture(scope="session")
async def kube_router(
    oidc_provider: OidcProvider,
    router_area: Path,
    control_plane: ControlPlane,
    kube_admin: KubeApi,
    operator: Operator,
    process_kubelet: Kubelet,
) -> AsyncIterator[Router]:
    ns = operator.namespace
    await kube_admin.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "kubepie-router"}}
    )
    await kube_admin.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", ROUTER_ROLE
    )
    await kube_admin.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "metadata": {"name": "kubepie-router"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "kubepie-router",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "kubepie-router", "namespace": ns}],
        },
    )
    kubeconfig = control_plane.service_account_kubeconfig(
        control_plane.workdir / "router.kubeconfig", ns, "kubepie-router", embed_ca=False
    )
    os.chown(kubeconfig, 999 if _has_user("kubepie") else 0, -1)
    router = start_router(
        oidc_provider,
        router_area,
        name="router-k8s",
        identity=CLAIMS_IDENTITY,
        extra={
            "backend": {
                "kind": "kubernetes",
                "start_timeout": 60,
                "kubernetes": {"namespace": ns, "kubeconfig": str(kubeconfig)},
            }
        },
    )
    try:
        yield router
    finally:
        router.stop()


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
