"""The one frozen settings object of the Hub hooks, read from the z2jh ``custom`` values.

``custom.computeInstances`` and ``custom.profiles`` follow the layout of the MAX IV example
(snake_case fields, instances referenced by key from ``allowed_compute_instances``);
``custom.kubepie`` holds everything else the hooks need. :func:`load_settings` validates the
whole tree once at Hub start and names the bad key in its error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hubintegration.errors import SettingsError
from identity.storage import MountSpec

_QUANTITY = re.compile(r"^\d+(\.\d+)?[KMGT]?$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Access(_Frozen):
    """Who may use a profile or instance: anyone with one of the roles or in one of the groups.

    Both empty means everyone. ``required_role`` (the MAX IV field name) adds one role.
    """

    required_role: str | None = None
    allowed_roles: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()

    @property
    def roles(self) -> frozenset[str]:
        extra = (self.required_role,) if self.required_role else ()
        return frozenset((*self.allowed_roles, *extra))

    def permits(self, roles: frozenset[str], groups: frozenset[str]) -> bool:
        if not self.roles and not self.allowed_groups:
            return True
        return bool(self.roles & roles) or bool(frozenset(self.allowed_groups) & groups)


class ComputeInstance(Access):
    """Resources of one kind of server. Memory as KubeSpawner byte strings (``500M``, ``100G``:
    powers of 1024); GPU amounts in meta-devices of ``gpu_resource_name``."""

    display_name: str
    description: str = ""
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: str | None = None
    mem_limit: str | None = None
    gpu_resource_name: str | None = None
    gpu_guarantee: int = 0
    gpu_limit: int = 0
    node_type: str | None = None
    #: Minutes a server of this kind may run; ``None``: no walltime sidecar limit.
    walltime_minutes: float | None = Field(default=None, gt=0)

    @field_validator("mem_guarantee", "mem_limit")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not _QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a byte quantity like 500M or 100G")
        return value


class ImageChoice(_Frozen):
    display_name: str
    image: str
    default: bool = False


class Profile(Access):
    display_name: str
    slug: str
    description: str = ""
    default: bool = False
    allowed_compute_instances: tuple[str, ...]
    images: dict[str, ImageChoice] = Field(default_factory=dict)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f"slug {value!r} must be lowercase letters, digits, '-' or '_'")
        return value


class Mount(_Frozen):
    name: str
    path: str
    read_only: bool = False

    def spec(self) -> MountSpec:
        return MountSpec(self.name, self.path, self.read_only)


class Ldap(_Frozen):
    """The directory to look Hub usernames up in (``claims.source: ldap``)."""

    urls: tuple[str, ...]
    user_base: str
    group_base: str
    bind_dn: str | None = None
    #: Environment variable of the Hub holding the bind password (from a Secret).
    bind_password_env: str = "KUBEPIE_LDAP_BIND_PASSWORD"  # noqa: S105 (a variable name)
    user_filter: str = "(objectClass=posixAccount)"
    group_filter: str = "(objectClass=posixGroup)"
    start_tls: bool = False
    ca_file: str | None = None
    #: Seconds a directory answer is reused.
    cache_ttl_s: float = Field(default=300.0, gt=0)


class Claims(_Frozen):
    """Where the POSIX identity comes from: the login's claims in ``auth_state`` (``claims``)
    or the directory, by Hub username (``ldap``)."""

    source: Literal["claims", "ldap"] = "claims"
    ldap: Ldap | None = None

    user_key: str = "oauth_user"
    uid: str = "uid"
    gid: str = "gid"
    gids: str = "gids"
    groups: str = "groups"
    #: UIDs below this are system accounts and never run a notebook.
    min_uid: int = 1000


class Sidecar(_Frozen):
    """A sidecar from ``singleuser.extraContainers`` (image and command are set there)."""

    #: Loopback port of the sidecar's JSON endpoint inside the pod.
    port: int = Field(default=8181, gt=0, lt=65536)


class TokenHelper(Sidecar):
    enabled: bool = True
    port: int = Field(default=8182, gt=0, lt=65536)
    #: Secret with ``client-id`` / ``client-secret`` of the Hub's OIDC client, for refreshing.
    client_secret_name: str = "kubepie-oidc-client"  # noqa: S105 (a Secret name)
    token_endpoint: str = ""
    #: In-memory volume shared with the notebook; the file is ``bt_u<uid>`` in it.
    token_dir: str = "/run/kubepie-token"  # noqa: S105 (a path)
    #: Refresh this many seconds before the access token expires.
    refresh_margin_s: int = Field(default=60, ge=0)


class Walltime(Sidecar):
    enabled: bool = True
    #: Warn this many seconds before the deadline.
    warn_before_s: int = Field(default=600, ge=0)


class KubePie(_Frozen):
    """Everything else the hooks need (``custom.kubepie``)."""

    claims: Claims = Field(default_factory=Claims)
    mounts: tuple[Mount, ...] = ()
    home_template: str = "/home/{username}"
    #: ConfigMap with ``passwd`` and ``group`` keys (written by ``kubepie nss-sync``).
    nss_configmap: str | None = "kubepie-nss"
    lxcfs: bool = True
    lxcfs_path: str = "/var/lib/lxcfs"
    #: Path of the startup wrapper inside the notebook (``singleuser.extraFiles``).
    startup_wrapper: str | None = "/opt/kubepie/start.sh"
    #: Node label that ``node_type`` selects on.
    node_type_label: str = "kubepie.io/node-type"
    #: MB of GPU memory per meta-device, per extended resource (for display names).
    gpu_unit_mb: dict[str, int] = Field(default_factory=dict)
    #: The Hub service that owns the per-server sidecar tokens.
    sidecar_service: str = "kubepie-sidecars"
    walltime: Walltime = Field(default_factory=Walltime)
    token_helper: TokenHelper = Field(default_factory=TokenHelper)

    def mount_specs(self) -> tuple[MountSpec, ...]:
        return tuple(m.spec() for m in self.mounts)


class HubSettings(_Frozen):
    compute_instances: dict[str, ComputeInstance] = Field(alias="computeInstances")
    profiles: tuple[Profile, ...]
    kubepie: KubePie = Field(default_factory=KubePie)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _key(loc: tuple[int | str, ...]) -> str:
    return "custom." + ".".join(str(part) for part in loc)


def load_settings(custom: Mapping[str, Any]) -> HubSettings:
    """Validate the chart's ``custom`` values; unknown instance references are errors too."""
    try:
        settings = HubSettings.model_validate(dict(custom))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SettingsError(f"{_key(first['loc'])}: {first['msg']}") from exc
    claims = settings.kubepie.claims
    if claims.source == "ldap" and claims.ldap is None:
        raise SettingsError("custom.kubepie.claims.ldap: required when source is ldap")
    try:
        settings.kubepie.mount_specs()
    except ValueError as exc:
        raise SettingsError(f"custom.kubepie.mounts: {exc}") from exc
    slugs: set[str] = set()
    for index, profile in enumerate(settings.profiles):
        if profile.slug in slugs:
            raise SettingsError(f"custom.profiles.{index}.slug: duplicate {profile.slug!r}")
        slugs.add(profile.slug)
        for key in profile.allowed_compute_instances:
            if key not in settings.compute_instances:
                raise SettingsError(
                    f"custom.profiles.{index}.allowed_compute_instances: unknown instance {key!r}"
                )
    return settings
