"""WLCG token profile storage scopes: ``storage.read|create|modify:/path`` as path capabilities.

Pure functions, no I/O. A scope grants its operation on its path and everything below it,
matched segment by segment: ``storage.read:/foo/bar`` grants ``/foo/bar`` and ``/foo/bar/x``
but not ``/foo/bargain``; ``storage.read:/`` grants reading everything. ``storage.modify``
includes ``create`` (the profile: "change data, including creating new files"), but neither
includes ``read``. Scopes outside the storage profile (``openid``, ``offline_access``,
``storage.stage:...``) are ignored. A storage scope whose path is not absolute or has ``.`` /
``..`` segments makes the whole set invalid (:class:`identity.errors.ScopeError`): a token that
says something odd about paths is refused rather than guessed at.

Capabilities only ever narrow what POSIX permissions allow. Whether a token without any storage
scope is unrestricted (the usual case for a browser login) is the caller's decision:
:attr:`Capabilities.restricted` tells the two apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from identity.errors import ScopeError

Operation = Literal["read", "create", "modify"]
OPERATIONS: tuple[Operation, ...] = ("read", "create", "modify")
_PREFIX = "storage."
#: Operations a capability grants, by its own operation.
_GRANTS: dict[Operation, frozenset[Operation]] = {
    "read": frozenset({"read"}),
    "create": frozenset({"create"}),
    "modify": frozenset({"create", "modify"}),
}
_OPERATION_NAMED: dict[str, Operation] = {op: op for op in OPERATIONS}


@dataclass(frozen=True, slots=True)
class Capability:
    """``operation`` on ``segments`` (the path, split on ``/``) and everything below it."""

    operation: Operation
    segments: tuple[str, ...]

    @property
    def path(self) -> str:
        return "/" + "/".join(self.segments)

    def __str__(self) -> str:
        return f"storage.{self.operation}:{self.path}"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The storage capabilities of one token; ``restricted`` if it carried any storage scope."""

    entries: tuple[Capability, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.entries)


def split_path(path: str) -> tuple[str, ...] | None:
    """The segments of an absolute path, or ``None`` if it is relative or has ``.``/``..``/NUL.

    Repeated and trailing slashes are ignored (``/a//b/`` is ``/a/b``).
    """
    if not path.startswith("/") or "\x00" in path:
        return None
    segments = tuple(s for s in path.split("/") if s)
    if any(s in {".", ".."} for s in segments):
        return None
    return segments


def parse_scope(scope: str) -> Capability | None:
    """One scope as a capability; ``None`` for a scope outside the profile.

    Raises :class:`ScopeError` for a storage scope with a malformed path.
    """
    if not scope.startswith(_PREFIX):
        return None
    name, sep, path = scope[len(_PREFIX) :].partition(":")
    operation = _OPERATION_NAMED.get(name)
    if not sep or operation is None:
        return None
    segments = split_path(path)
    if segments is None:
        raise ScopeError(f"malformed path in storage scope {name!r}")
    return Capability(operation, segments)


def parse_scopes(scopes: Iterable[str]) -> Capabilities:
    """All storage capabilities in ``scopes`` (e.g. ``ValidatedToken.scopes``), deduplicated."""
    entries: dict[Capability, None] = {}
    for scope in scopes:
        capability = parse_scope(scope)
        if capability is not None:
            entries[capability] = None
    return Capabilities(tuple(entries))


def allows(capabilities: Capabilities, operation: Operation, path: str) -> bool:
    """Whether ``capabilities`` grant ``operation`` on ``path`` (absolute). Malformed: never."""
    segments = split_path(path)
    if segments is None:
        return False
    for capability in capabilities.entries:
        if operation not in _GRANTS[capability.operation]:
            continue
        prefix = capability.segments
        if segments[: len(prefix)] == prefix:
            return True
    return False


def require(capabilities: Capabilities, operation: Operation, path: str) -> None:
    """Raise :class:`ScopeError` unless ``capabilities`` grant ``operation`` on ``path``."""
    if not allows(capabilities, operation, path):
        raise ScopeError(f"token scopes do not grant {operation} on this path")
