"""Storage mount specifications, configured once and shared by every consumer.

The same list feeds WebDAV and S3 (the file server), the Kubernetes file-server pods and the
JupyterHub notebook pods. A spec's ``path`` is a template: ``{username}`` becomes the user's
name, and a spec whose path contains ``{group}`` becomes one mount per group of the user (named
``<name>-<group>`` unless the name itself contains ``{group}``). Pure functions only.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from identity.models import Identity

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_FIELDS = frozenset({"username", "group"})


@dataclass(frozen=True, slots=True)
class MountSpec:
    """One configured storage area: ``name`` (URL segment / S3 bucket), ``path`` template."""

    name: str
    path: str
    read_only: bool = False

    def __post_init__(self) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(self.path) if f is not None}
        unknown = fields - _FIELDS
        if unknown:
            raise ValueError(f"mount {self.name!r}: unknown placeholder {sorted(unknown)[0]!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"mount {self.name!r}: path {self.path!r} is not absolute")
        if "{group}" in self.name and "{group}" not in self.path:
            raise ValueError(f"mount {self.name!r}: name uses {{group}} but path does not")
        if not _NAME.match(self.name.replace("{group}", "g")):
            raise ValueError(f"mount name {self.name!r} is not a valid bucket/segment name")

    @property
    def per_group(self) -> bool:
        return "{group}" in self.path


@dataclass(frozen=True, slots=True)
class ResolvedMount:
    """A mount for one user: a concrete absolute path."""

    name: str
    path: str
    read_only: bool


def _segment_safe(value: str) -> bool:
    return bool(value) and "/" not in value and "\x00" not in value and value not in {".", ".."}


def resolve_mounts(specs: tuple[MountSpec, ...], identity: Identity) -> tuple[ResolvedMount, ...]:
    """The concrete mounts of ``identity``, in spec order (group mounts in group-name order).

    Names that cannot be used safely as a path segment (``/``, ``..``, NUL) are skipped, never
    substituted into a path.
    """
    out: list[ResolvedMount] = []
    if not _segment_safe(identity.username):
        return ()
    for spec in specs:
        if spec.per_group:
            for group in identity.groups:
                if not _segment_safe(group):
                    continue
                name = (
                    spec.name.replace("{group}", group)
                    if "{group}" in spec.name
                    else f"{spec.name}-{group}"
                )
                path = spec.path.format(username=identity.username, group=group)
                out.append(ResolvedMount(name, path, spec.read_only))
        else:
            path = spec.path.format(username=identity.username, group="")
            out.append(ResolvedMount(spec.name, path, spec.read_only))
    return tuple(out)
