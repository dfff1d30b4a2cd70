"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler (v1.20.2, built by ``scripts/k8s-testenv build`` into
``~/.cache/kubepie-k8s``), started once per test session on free loopback ports.

Authentication is by static bearer tokens: ``admin`` (group ``system:masters``), ``alice``
(group ``kubepie-users``, no RBAC grants), and the controller-manager's and scheduler's own
users. Service-account tokens are signed with a key made here, so a kubeconfig for any
ServiceAccount works too (:meth:`ControlPlane.service_account_kubeconfig`). etcd keeps its data
on ``/dev/shm`` when it can: fsync on a shared disk would dominate every write.

Missing binaries fail the session with the command that builds them; nothing is skipped.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[3]
INSTALLER = ROOT / "scripts" / "k8s-testenv"
SERVICE_CIDR = "10.0.0.0/24"
#: Seconds each component gets to come up on a busy 2-core machine.
START_TIMEOUT = 120.0


def binaries() -> Path:
    """The directory of the control-plane binaries; fails naming the command that builds them."""
    result = subprocess.run([str(INSTALLER), "bindir"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"the Kubernetes control plane is not built ({result.stderr.strip()}): run "
            f"`{INSTALLER.relative_to(ROOT)} build` (make test does it)"
        )
    return Path(result.stdout.strip())


@dataclass
class ControlPlane:
    """A running control plane; :meth:`start` brings it up, :meth:`stop` tears it down."""

    workdir: Path
    bindir: Path
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    etcd_data: Path | None = None

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def alice_kubeconfig(self) -> Path:
        return self.workdir / "alice.kubeconfig"

    @property
    def kubectl(self) -> Path:
        return self.bindir / "kubectl"

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self._make_pki()
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            self.etcd_data = Path(tempfile.mkdtemp(prefix="kubepie-etcd-", dir=shm))
        else:
            self.etcd_data = self.workdir / "etcd"
        etcd = f"http://127.0.0.1:{etcd_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self._run(
            "etcd",
            [
                str(self.bindir / "etcd"),
                "--name=kubepie-test",
                f"--data-dir={self.etcd_data}",
                f"--listen-client-urls={etcd}",
                f"--advertise-client-urls={etcd}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kubepie-test={peer}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
            ],
        )
        self._wait_http(f"{etcd}/health", "etcd")
        self.url = f"https://127.0.0.1:{api_port}"
        pki = self.pki
        self._run(
            "kube-apiserver",
            [
                str(self.bindir / "kube-apiserver"),
                f"--etcd-servers={etcd}",
                "--bind-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--insecure-port=0",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait_http(f"{self.url}/readyz", "kube-apiserver", token=self.tokens["admin"])
        self._kubeconfig(self.admin_kubeconfig, "admin", self.tokens["admin"])
        self._kubeconfig(self.alice_kubeconfig, "alice", self.tokens["alice"])
        kcm = self.workdir / "kcm.kubeconfig"
        self._kubeconfig(kcm, "system:kube-controller-manager", self.tokens["kcm"])
        self._run(
            "kube-controller-manager",
            [
                str(self.bindir / "kube-controller-manager"),
                f"--kubeconfig={kcm}",
                "--port=0",
                "--secure-port=0",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allocate-node-cidrs=false",
                "--v=1",
            ],
        )
        scheduler = self.workdir / "scheduler.kubeconfig"
        self._kubeconfig(scheduler, "system:kube-scheduler", self.tokens["scheduler"])
        self._run(
            "kube-scheduler",
            [
                str(self.bindir / "kube-scheduler"),
                f"--kubeconfig={scheduler}",
                "--port=0",
                "--secure-port=0",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _run(self, name: str, argv: list[str]) -> None:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        proc = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log", env=env).start()
        self.processes.append(proc)

    def _wait_http(self, url: str, name: str, token: str | None = None) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file)) if token else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        proc = self.processes[-1]

        def ok() -> bool:
            request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback)
            with urllib.request.urlopen(request, timeout=2, context=context) as answer:  # noqa: S310
                return bool(answer.status == 200)

        proc.wait_until(ok, START_TIMEOUT, f"{name} {url}")

    # -- credentials ----------------------------------------------------------------------

    def _make_pki(self) -> None:
        pki = self.pki
        pki.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubepie-test-ca")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(pki / "ca.key", ca_key)
        (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / "apiserver.key", key)
        (pki / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / "sa.key", sa_key)
        (pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.tokens = {
            name: secrets.token_hex(24) for name in ("admin", "alice", "kcm", "scheduler")
        }
        lines = [
            f'{self.tokens["admin"]},admin,uid-admin,"system:masters"',
            f'{self.tokens["alice"]},alice,uid-alice,"kubepie-users"',
            f"{self.tokens['kcm']},system:kube-controller-manager,uid-kcm",
            f"{self.tokens['scheduler']},system:kube-scheduler,uid-scheduler",
        ]
        tokens = pki / "tokens.csv"
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)

    def _kubeconfig(self, path: Path, user: str, token: str, namespace: str = "default") -> None:
        write_kubeconfig(path, self.url, self.ca_file, user, token, namespace)

    def service_account_kubeconfig(
        self, path: Path, namespace: str, name: str, *, embed_ca: bool = True
    ) -> Path:
        """A kubeconfig authenticating as ServiceAccount ``namespace/name`` (which must exist),
        with a token requested from the apiserver (TokenRequest, valid for a day)."""
        answer = subprocess.run(
            [
                str(self.kubectl),
                f"--kubeconfig={self.admin_kubeconfig}",
                "create",
                "--raw",
                f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                "-f",
                "-",
            ],
            input=(
                '{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", '
                '"spec": {"expirationSeconds": 86400}}'
            ),
            capture_output=True,
            text=True,
            check=True,
        )
        token = json.loads(answer.stdout)["status"]["token"]
        ca_file = self.ca_file
        if not embed_ca:
            ca_file = self.workdir / "ca.crt"
            shutil.copyfile(self.ca_file, ca_file)
            ca_file.chmod(0o644)
        write_kubeconfig(
            path, self.url, ca_file, f"{namespace}-{name}", token, namespace, embed_ca=embed_ca
        )
        return path

    # -- stop -----------------------------------------------------------------------------

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout=10)
        self.processes.clear()
        if self.etcd_data is not None and str(self.etcd_data).startswith("/dev/shm/kubepie-etcd-"):
            shutil.rmtree(self.etcd_data, ignore_errors=True)


def write_kubeconfig(
    path: Path,
    url: str,
    ca_file: Path,
    user: str,
    token: str,
    namespace: str = "default",
    *,
    embed_ca: bool = True,
) -> None:
    """A kubeconfig with one cluster, one token user and one context (mode 0600). With
    ``embed_ca=False`` it names ``ca_file`` instead of holding the CA (for a process that
    drops root: the client library writes embedded data to a temporary file of its own)."""
    if embed_ca:
        ca = "certificate-authority-data: " + base64.b64encode(ca_file.read_bytes()).decode()
    else:
        ca = f"certificate-authority: {ca_file}"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: kubepie-test\n  cluster:\n    server: {url}\n"
        f"    {ca}\n"
        f"users:\n- name: {user}\n  user:\n    token: {token}\n"
        f"contexts:\n- name: {user}\n  context:\n    cluster: kubepie-test\n"
        f"    user: {user}\n    namespace: {namespace}\n"
        f"current-context: {user}\n"
    )
    path.chmod(0o600)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def wait_for(check: object, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll the callable ``check`` until it returns true; fail naming ``what``."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not true after {timeout:g} s (last error: {last!r})")
