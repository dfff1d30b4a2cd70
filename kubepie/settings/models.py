"""The one settings object of ``kubepie serve``, as frozen pydantic models.

Each field's docstring gives its unit and why its default; ``examples/kubepie.yaml`` shows every
key. Secrets are :class:`~pydantic.SecretStr` (hidden in reprs and dumps) and may come from
``KUBEPIE_*`` environment variables instead of the file (see :mod:`kubepie.settings.loader`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from identity.storage import MountSpec
from kubepie.credentials.cipher import EncryptionKey
from kubepie.credentials.store import CredentialPolicy
from kubepie.settings.fields import (
    BaseUrl,
    Duration,
    EncryptionKeyText,
    Frozen,
    HttpUrl,
    ListenAddress,
    OneOrMany,
    required_with,
)

if TYPE_CHECKING:
    import identity.ldap


class OidcSettings(Frozen):
    """The OpenID Connect issuer users log in with, and this router's client at it."""

    issuer: HttpUrl
    """Issuer URL exactly as in tokens' ``iss``; discovery is read from
    ``{issuer}/.well-known/openid-configuration``. https (http only for localhost)."""
    client_id: str = Field(min_length=1)
    """This router's client id at the issuer (authorization code flow with PKCE)."""
    client_secret: SecretStr
    """The client's secret. Prefer ``KUBEPIE_OIDC_CLIENT_SECRET`` to writing it in the file."""
    audiences: Annotated[tuple[str, ...], OneOrMany] = ()
    """``aud`` values accepted in bearer tokens. Empty: only ``client_id``, which is what the
    issuer puts in tokens it mints for this client; add a resource name for tokens minted for
    other clients (WLCG tools) that are meant for this service."""
    scopes: Annotated[tuple[str, ...], OneOrMany] = ("openid", "profile", "email")
    """Scopes requested at browser login: the standard ones that carry username and groups."""
    leeway: float = Field(default=30.0, ge=0, le=300)
    """Seconds of clock skew allowed on ``exp``/``nbf``/``iat``: 30 covers hosts kept in sync
    by NTP without noticeably lengthening a token's life."""

    @model_validator(mode="after")
    def _openid_scope(self) -> OidcSettings:
        if "openid" not in self.scopes:
            raise required_with("scopes", "must include 'openid' (OpenID Connect login)")
        return self

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        return self.audiences or (self.client_id,)


class LdapSettings(Frozen):
    """The LDAP directory (``identity.source: ldap``): RFC 2307 / rfc2307bis POSIX entries."""

    url: Annotated[tuple[str, ...], OneOrMany, Field(min_length=1)]
    """``ldap://`` or ``ldaps://`` URL, or a list tried in order (failover)."""
    user_base: str = Field(min_length=1)
    """Base DN of the ``posixAccount`` entries (subtree search)."""
    group_base: str = Field(min_length=1)
    """Base DN of the ``posixGroup`` entries (subtree search)."""
    bind_dn: str | None = None
    """DN to bind as; unset binds anonymously (fine where the directory allows reads)."""
    bind_password: SecretStr | None = None
    """Password of ``bind_dn``. Prefer ``KUBEPIE_IDENTITY_LDAP_BIND_PASSWORD``."""
    user_filter: str = "(objectClass=posixAccount)"
    """Filter selecting accounts: the RFC 2307 object class every POSIX account has."""
    group_filter: str = "(objectClass=posixGroup)"
    """Filter selecting groups: the RFC 2307 object class every POSIX group has."""
    ca_file: Path | None = None
    """PEM file of the CAs signing the server certificate; unset uses the system store."""
    start_tls: bool = False
    """Upgrade ``ldap://`` connections with StartTLS before binding. Off by default because
    ``ldaps://`` is the usual way; turn it on for an ``ldap://`` server outside localhost."""
    tls_verify: Literal["required", "optional", "none"] = "required"
    """Server certificate check: anything but ``required`` lets a machine on the path answer
    for the directory, and so choose every user's UID."""
    connect_timeout: Duration = 3.0
    """Seconds to wait for each URL's TCP connection: short, so a dead server fails over (or
    fails closed) before a login times out."""
    receive_timeout: int = Field(default=10, ge=1)
    """Whole seconds to wait for one answer on an open connection."""

    @model_validator(mode="after")
    def _consistent(self) -> LdapSettings:
        if self.bind_dn and self.bind_password is None:
            raise required_with(
                "bind_password",
                "required when bind_dn is set (or set KUBEPIE_IDENTITY_LDAP_BIND_PASSWORD)",
            )
        for url in self.url:
            if not url.startswith(("ldap://", "ldaps://")):
                raise required_with("url", f"{url!r} is not an ldap:// or ldaps:// URL")
            if self.start_tls and url.startswith("ldaps://"):
                raise required_with("start_tls", f"cannot be used with {url!r} (already TLS)")
        try:
            self.directory_settings()
        except ValueError as exc:
            key, _, problem = str(exc).partition(": ")
            field = key.removeprefix("ldap.").replace("urls", "url")
            if problem and field in type(self).model_fields:
                raise required_with(field, problem) from None
            raise ValueError(str(exc)) from None
        return self

    def directory_settings(self) -> identity.ldap.LdapSettings:
        """These settings as :class:`identity.ldap.LdapSettings`, for ``LdapDirectory``."""
        from identity.ldap import LdapSettings as DirectorySettings

        password = self.bind_password
        return DirectorySettings(
            urls=self.url,
            user_base=self.user_base,
            group_base=self.group_base,
            bind_dn=self.bind_dn,
            bind_password=password.get_secret_value() if password is not None else "",
            user_filter=self.user_filter,
            group_filter=self.group_filter,
            start_tls=self.start_tls,
            ca_file=str(self.ca_file) if self.ca_file is not None else None,
            tls_verify=self.tls_verify,
            connect_timeout=self.connect_timeout,
            receive_timeout=self.receive_timeout,
        )


class IdentitySettings(Frozen):
    """How an authenticated user becomes a POSIX identity (UID, GID, supplementary GIDs)."""

    source: Literal["claims", "ldap", "static"] = "claims"
    """Where UID/GIDs come from: token ``claims`` (the issuer is fed from the directory), an
    ``ldap`` directory, or a ``static`` YAML file. Claims by default: nothing else to run."""
    username_claim: str = "preferred_username"
    """Claim holding the POSIX username: the OIDC standard claim for a login name."""
    uid_claim: str = "uidNumber"
    """Claim holding the UID (``source: claims``); named after the LDAP attribute it mirrors."""
    gid_claim: str = "gidNumber"
    """Claim holding the primary GID (``source: claims``); named after the LDAP attribute."""
    gids_claim: str = "gidNumbers"
    """Claim holding the supplementary GIDs as a list of numbers (``source: claims``)."""
    groups_claim: str = "groups"
    """Claim holding group names: the name Keycloak, Dex and oidc-provider use."""
    min_uid: int = Field(default=1000, ge=1)
    """Lowest UID a request may run as: regular accounts start at 1000 on Debian and RHEL;
    system accounts below it, and root always, are refused."""
    min_gid: int | None = Field(default=None, ge=1)
    """Lowest GID, primary or supplementary, a request may run with: below it are system groups
    (``disk`` 6, ``shadow`` 42: raw disks, password hashes), and an identity holding one is
    refused, not trimmed. Unset: the same as ``min_uid`` (Debian and RHEL number regular groups
    from 1000, like accounts)."""
    allowed_low_gids: tuple[int, ...] = ()
    """GIDs below ``min_gid`` that are still allowed, e.g. ``[100]`` where ``users`` is every
    account's primary group. Empty by default: no system group is trusted unless named."""
    allowed_groups: Annotated[tuple[str, ...], OneOrMany] = ()
    """If not empty, only members of one of these groups may use the service."""
    cache_ttl: Duration = 300.0
    """Seconds a directory answer is reused: five minutes bounds both the load on the directory
    and how long a removed group membership still applies."""
    ldap: LdapSettings | None = None
    """The LDAP directory; required (and only read) when ``source`` is ``ldap``."""
    static_file: Path | None = None
    """YAML file of users and groups; required (and only read) when ``source`` is ``static``."""

    @property
    def effective_min_gid(self) -> int:
        """``min_gid``, or ``min_uid`` when it is unset."""
        return self.min_gid if self.min_gid is not None else self.min_uid

    @model_validator(mode="after")
    def _source_settings(self) -> IdentitySettings:
        if self.source == "ldap" and self.ldap is None:
            raise required_with("ldap", "required when identity.source is 'ldap'")
        if self.source == "static" and self.static_file is None:
            raise required_with("static_file", "required when identity.source is 'static'")
        return self


class MountSettings(Frozen):
    """One storage area; see :class:`identity.storage.MountSpec` for the templates."""

    name: str
    """URL segment (``/dav/<name>/``) and S3 bucket name; may contain ``{group}``."""
    path: str
    """Absolute path template: ``/home/{username}``, ``/data``, ``/group/{group}``."""
    read_only: bool = False
    """Refuse every write to this mount, whatever POSIX permissions would allow."""

    @model_validator(mode="after")
    def _valid_spec(self) -> MountSettings:
        try:
            self.to_spec()
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return self

    def to_spec(self) -> MountSpec:
        return MountSpec(self.name, self.path, self.read_only)


class KubernetesBackendSettings(Frozen):
    """``backend.kind: kubernetes``: each user's server is a ``FileServer`` resource that
    ``kubepie operator`` turns into a Pod."""

    namespace: str = Field(default="kubepie", min_length=1)
    """Namespace of the FileServers (the operator's ``namespace``)."""
    kubeconfig: Path | None = None
    """A kubeconfig file; unset uses the router Pod's ServiceAccount."""
    activity_interval: Duration = 60.0
    """Seconds between two reports of a user's activity (``status.lastActivity``): once a
    minute is precise enough for an idle timeout of minutes and spares the API a write per
    request."""


class BackendSettings(Frozen):
    """Where per-user file servers run."""

    kind: Literal["local", "kubernetes"] = "local"
    """``local``: one process per user on this machine (the embedded default);
    ``kubernetes``: one Pod per user, made by ``kubepie operator`` (see ``kubernetes``)."""
    kubernetes: KubernetesBackendSettings = KubernetesBackendSettings()
    """Where the FileServers live (read only when ``kind`` is ``kubernetes``)."""
    idle_timeout: Duration = 900.0
    """Seconds without requests after which a user's server is stopped: 15 minutes keeps a
    working session's server warm while freeing memory soon after people leave."""
    max_servers: int = Field(default=100, ge=1)
    """Most user servers running at once: at about 40 MB each, 100 stay under 4 GB."""
    start_timeout: Duration = 10.0
    """Seconds a new server has to become ready before the request fails with 503."""
    memory_limit_mb: int | None = Field(default=1024, ge=64)
    """Ceiling on each user's server's data memory (``RLIMIT_DATA``), in MiB: an allocation
    beyond it fails in the request that made it. 1024 leaves room for listings of 100,000
    entries (a busy server measured about 210 MiB of data); null: no ceiling."""


class CredentialsSettings(Frozen):
    """App credentials (access key id + secret) for WebDAV Basic and S3 SigV4 clients."""

    encryption_keys: Annotated[tuple[EncryptionKeyText, ...], OneOrMany, Field(min_length=1)]
    """AES-256 keys (32 random bytes, base64) that encrypt stored secrets, newest first: new
    secrets use the first, any listed key decrypts. Rotate by putting a new key first and
    keeping the old one until the store is resealed. Prefer
    ``KUBEPIE_CREDENTIALS_ENCRYPTION_KEY`` (one key) or ``..._KEYS`` (comma-separated)."""
    max_lifetime: Duration | None = None
    """Longest lifetime, in seconds, a credential may have (and the lifetime of one created
    without ``expires_in``). Unset: credentials live until revoked, like AWS access keys."""
    max_per_owner: int = Field(default=100, ge=1)
    """Most unrevoked credentials one user may hold; bounds what one account can store."""
    last_used_interval: Duration = 60.0
    """Seconds between writes of a credential's "last used" time: once a minute is precise
    enough for people and spares the database a write per request."""

    def keys(self) -> tuple[EncryptionKey, ...]:
        return tuple(EncryptionKey.from_text(k.get_secret_value()) for k in self.encryption_keys)

    def policy(self) -> CredentialPolicy:
        return CredentialPolicy(
            last_used_interval=self.last_used_interval,
            max_lifetime=self.max_lifetime,
            max_per_owner=self.max_per_owner,
        )


class AccountingSettings(Frozen):
    """Transfer accounting (one JSON line per request)."""

    log_file: Path | None = None
    """File the JSON lines are appended to; unset writes them to standard output, where a
    container runtime collects them."""
    group: str | None = None
    """Group (name or number) that may read ``log_file``: the file is then ``0640`` and that
    group's, e.g. a log shipper's. Unset: ``0600``, because the lines name users and paths."""


class ConnectionSettings(Frozen):
    """Bounds on every client connection of the router's listeners (main and S3), so that
    slow, idle or oversized requests cannot pile up (see :mod:`kubepie.router.listener`)."""

    max_head_size: int = Field(default=65536, ge=1024)
    """Bytes a request head (request line and header fields) may have; larger is answered
    431. 64 KiB holds a session cookie and a long presigned URL several times over; nginx
    accepts 32 KiB by default."""
    max_headers: int = Field(default=100, ge=8)
    """Header fields a request may have; more is answered 431 (Apache's default, 100)."""
    head_timeout: Duration = 30.0
    """Seconds from a head's first byte until it must be complete, else 408: a real client
    sends its head at once; nginx waits 60 s, Apache 20-40 s."""
    body_timeout: Duration = 60.0
    """Seconds a request body may make no progress while the router reads it, else 408 (or
    the connection is closed once an answer has started): nginx's default."""
    idle_timeout: int = Field(default=30, ge=1)
    """Whole seconds a connection may stay open without a request (new, or kept alive
    between requests) before it is closed."""
    max_connections: int = Field(default=1000, ge=1)
    """Open connections per listener; a new one beyond it is answered 503 and closed. Keep
    it well under the process's descriptor limit (each connection also has an upstream one);
    ``kubepie serve`` raises its soft limit to fit both listeners when the hard limit allows."""


class KubePieSettings(Frozen):
    """Everything ``kubepie serve`` reads at start."""

    listen: ListenAddress = ListenAddress(host="127.0.0.1", port=8080)
    """Address of the router (web UI, WebDAV, API). Loopback by default, so nothing is exposed
    until you say so; in a container use ``0.0.0.0:8080``."""
    s3_listen: ListenAddress | None = ListenAddress(host="127.0.0.1", port=9000)
    """Address of the S3 endpoint (9000: the port S3-compatible servers use by convention);
    ``null`` turns S3 off."""
    public_url: BaseUrl
    """URL users reach the router at (OIDC redirect URI base, links in the UI). https (http
    only for localhost), because session cookies are only sent securely over https."""
    oidc: OidcSettings
    """The OpenID Connect issuer and client."""
    identity: IdentitySettings = IdentitySettings()
    """Claims → POSIX identity."""
    mounts: tuple[MountSettings, ...] = Field(min_length=1)
    """Storage areas, in the order clients list them."""
    backend: BackendSettings = BackendSettings()
    """Per-user servers."""
    router_user: str | None = "kubepie"
    """Account (name or number) the router runs as when started as root: only the backend's
    fork helper keeps root, the network-facing router gives it up before its first request.
    A dedicated system account (``useradd --system kubepie``), because ``state_dir`` becomes
    its. ``null`` keeps the router root: not recommended, and warned about."""
    state_dir: Path = Path("/var/lib/kubepie")
    """Directory for the router's state (the credential database): the FHS place for
    persistent application state. Created ``0700`` if missing."""
    credentials: CredentialsSettings
    """App credentials; the encryption key is required."""
    accounting: AccountingSettings = AccountingSettings()
    """Transfer accounting."""
    connections: ConnectionSettings = ConnectionSettings()
    """Limits on client connections, for both listeners."""

    @model_validator(mode="after")
    def _unique_mounts(self) -> KubePieSettings:
        seen: set[str] = set()
        for mount in self.mounts:
            if mount.name in seen:
                raise required_with("mounts", f"mount name {mount.name!r} is used twice")
            seen.add(mount.name)
        return self

    @property
    def mount_specs(self) -> tuple[MountSpec, ...]:
        return tuple(mount.to_spec() for mount in self.mounts)

    @property
    def credentials_database(self) -> Path:
        """The SQLite file of the credential store."""
        return self.state_dir / "credentials.sqlite3"
