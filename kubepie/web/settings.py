"""What the web UI needs to know about its deployment, read once from ``KubePieSettings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kubepie.settings.models import KubePieSettings


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The UI's view of the configuration (frozen; built by :meth:`from_settings`)."""

    #: The router's public URL, without a trailing slash (links, WebDAV addresses).
    public_url: str
    #: The S3 endpoint users reach, or ``None`` when S3 is off.
    s3_url: str | None
    #: ``claims``, ``ldap`` or ``static``: how users are mapped (shown on who-am-I).
    identity_source: str
    #: Where the mapping reads from, in words (claim names, directory URL or file).
    identity_detail: str
    #: The mount the examples use when a credential has no prefix.
    default_mount: str
    #: Mount names (templates included) that are read-only for everyone.
    read_only_mounts: frozenset[str]
    #: Mount names as configured (templates included), in the configured order.
    mount_order: tuple[str, ...]
    #: Key material the CSRF key is derived from (the first credential encryption key).
    csrf_material: bytes = field(repr=False)

    @classmethod
    def from_settings(cls, settings: KubePieSettings) -> WebSettings:
        public = str(settings.public_url).rstrip("/")
        s3_url = None
        if settings.s3_listen is not None:
            # The S3 listener on the public host (a proxy in front may map it elsewhere).
            parts = urlsplit(public)
            host = parts.hostname or settings.s3_listen.host
            if ":" in host:
                host = f"[{host}]"
            s3_url = f"{parts.scheme}://{host}:{settings.s3_listen.port}"
        ident = settings.identity
        if ident.source == "ldap" and ident.ldap is not None:
            detail = f"looked up by username in the LDAP directory {ident.ldap.url[0]}"
        elif ident.source == "static":
            detail = "looked up by username in the site's static directory file"
        else:
            detail = (
                f"read from the login token's claims {ident.username_claim}, "
                f"{ident.uid_claim}, {ident.gid_claim}, {ident.gids_claim} and "
                f"{ident.groups_claim}"
            )
        concrete = [m.name for m in settings.mounts if "{" not in m.name]
        return cls(
            public_url=public,
            s3_url=s3_url,
            identity_source=ident.source,
            identity_detail=detail,
            default_mount=concrete[0] if concrete else settings.mounts[0].name,
            read_only_mounts=frozenset(m.name for m in settings.mounts if m.read_only),
            mount_order=tuple(m.name for m in settings.mounts),
            csrf_material=settings.credentials.keys()[0].material,
        )


def mount_rank(name: str, order: tuple[str, ...]) -> tuple[int, str]:
    """Sort key of a user's mount: the configured order (``group-{group}`` matches every
    ``group-...``), then the name. Pure."""
    for index, template in enumerate(order):
        head, brace, rest = template.partition("{")
        tail = rest.partition("}")[2]
        if name == template or (
            brace and name.startswith(head) and name.endswith(tail) and len(name) > len(head)
        ):
            return index, name
    return len(order), name
