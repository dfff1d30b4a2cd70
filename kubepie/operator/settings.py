"""Settings of ``kubepie operator`` (one YAML file, validated at start; see
``examples/operator.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from kubepie.operator.errors import ConfigurationError
from kubepie.settings.fields import Duration, Frozen, OneOrMany, required_with
from kubepie.settings.models import IdentitySettings, MountSettings


class PodSettings(Frozen):
    """What every file-server Pod gets."""

    image: str = Field(default="ghcr.io/kubepie/kubepie:0.1.0", min_length=1)
    """Container image holding ``kubepie`` (a FileServer's ``spec.image`` overrides it)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """``IfNotPresent``: a tagged release image need not be pulled again for every user."""
    command: Annotated[tuple[str, ...], OneOrMany] = ("kubepie", "fileserver")
    """The file server's command in the image (arguments are added by the operator)."""
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "512Mi"},
    }
    """Container resources: an idle server needs about 40 MB; the limit leaves room for
    large listings and uploads. No CPU limit: throttling would slow transfers for nothing."""
    node_selector: dict[str, str] = {}
    """Labels of the nodes that may run file servers (those mounting the storage)."""


class WebhookSettings(Frozen):
    """The admission webhook (PieSec) served by the operator over TLS."""

    enabled: bool = True
    listen_host: str = "0.0.0.0"  # noqa: S104 (a pod's address)
    """Address the HTTPS server binds to."""
    port: int = Field(default=9443, ge=1, le=65535)
    """Port of the HTTPS server (9443: the usual port of admission webhooks)."""
    url_host: str = Field(default="kubepie-operator.kubepie.svc", min_length=1)
    """Host name (or IP) the API server calls; it is in the certificate the operator makes."""
    cert_dir: Path = Path("/run/kubepie/webhook")
    """Where the operator writes its CA and serving certificate (made at start)."""
    configuration_name: str = "kubepie.io"
    """Name of the Mutating- and ValidatingWebhookConfiguration the operator keeps."""
    operator_users: Annotated[tuple[str, ...], OneOrMany] = (
        "system:serviceaccount:kubepie:kubepie-operator",
    )
    """Users allowed to create file-server Pods: the operator's ServiceAccount."""
    hub_users: Annotated[tuple[str, ...], OneOrMany] = ()
    """Users allowed to create JupyterHub single-user Pods (the Hub's ServiceAccount)."""
    hub_label: str | None = None
    """``key=value`` label marking JupyterHub single-user Pods to mutate and check
    (unset: only file servers are handled)."""
    username_label: str = "kubepie.io/username"
    """Label holding the POSIX username of a handled Pod."""


class OperatorSettings(Frozen):
    """Everything ``kubepie operator`` reads at start."""

    namespace: str = Field(default="kubepie", min_length=1)
    """Namespace of the FileServers, their Pods and Secrets, and the NSS ConfigMap."""
    kubeconfig: Path | None = None
    """A kubeconfig file; unset uses the Pod's ServiceAccount (in a cluster)."""
    identity: IdentitySettings
    """The directory (``ldap`` or ``static``) the webhook and NSS sync read, and ``min_uid``."""
    mounts: tuple[MountSettings, ...] = ()
    """The storage mounts: the only host paths a handled Pod may mount."""
    pod: PodSettings = PodSettings()
    """What file-server Pods get."""
    webhook: WebhookSettings = WebhookSettings()
    """The admission webhook."""
    idle_timeout: Duration = 900.0
    """Seconds without activity (``status.lastActivity``, reported by the router at most once
    a minute) after which a FileServer is deleted: 15 minutes, like the local backend."""
    reconcile_interval: Duration = 30.0
    """Seconds between checks of every FileServer (a dead Pod, an idle server) besides the
    reactions to events."""
    nss_configmap: str | None = "kubepie-nss"
    """ConfigMap kept in step with the directory (keys ``passwd`` and ``group``); unset: off."""
    nss_interval: Duration = 60.0
    """Seconds between directory reads of the NSS sync (written only on change)."""

    @model_validator(mode="after")
    def _directory(self) -> OperatorSettings:
        if self.identity.source == "claims":
            raise required_with(
                "identity",
                "identity.source must be 'ldap' or 'static': the webhook looks users up by name",
            )
        return self

    @property
    def min_uid(self) -> int:
        return self.identity.min_uid


def load_operator_settings(path: str | Path) -> OperatorSettings:
    """The settings in the YAML file ``path``; :class:`ConfigurationError` names bad keys."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot read the settings: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: the top level must be a mapping of keys")
    try:
        return OperatorSettings.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise ConfigurationError(f"{path}: " + "; ".join(problems)) from None
