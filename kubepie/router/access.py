"""Who is asking (:class:`Principal`) and the pure checks of what they may touch.

Every request is authenticated into a :class:`Principal`: the mapped POSIX identity plus what
narrows it. Three things may narrow, never widen, what POSIX permissions allow:

* an app credential's ``read_only`` flag and ``prefix``
  (:func:`kubepie.credentials.models.check_access`);
* a bearer token's WLCG ``storage.*`` scopes (only when the token carries any);
* a read-only mount (enforced by the file server itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from identity.models import Identity
from identity.scopes import Capabilities, Operation, allows, require
from kubepie.credentials.models import Credential, check_access
from kubepie.router.errors import BadRequest
from kubepie.router.paths import StoragePath, Target


class AuthMethod(StrEnum):
    """How a request authenticated (written to the accounting log)."""

    SESSION = "session"
    BEARER = "bearer"
    BASIC = "basic"
    SIGV4 = "sigv4"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated request's identity and the restrictions that apply to it."""

    identity: Identity
    method: AuthMethod
    capabilities: Capabilities = field(default_factory=Capabilities)
    credential: Credential | None = None


def check(principal: Principal, path: StoragePath, operations: Iterable[Operation]) -> None:
    """Raise a 403 error unless ``principal`` may do ``operations`` on ``path`` (pure).

    Credential refusals are :class:`kubepie.credentials.errors.CredentialScopeError`, scope
    refusals :class:`identity.errors.ScopeError`; both answer 403.
    """
    ops = tuple(operations)
    if principal.credential is not None:
        write = any(op != "read" for op in ops)
        check_access(principal.credential, path.segments, write=write)
    if principal.capabilities.restricted:
        for op in ops:
            require(principal.capabilities, op, path.text)


def authorize(principal: Principal, targets: Iterable[Target]) -> bool:
    """Check every path a request touches (:func:`check`); true if it must go *create-only*.

    A request goes create-only when it creates somewhere (:attr:`Target.creates`) that the
    principal may create but not modify: a WLCG token with ``storage.create`` and without
    ``storage.modify`` there. The router then marks the forwarded request, and the file
    server creates exclusively and replaces nothing, so "create" never turns into "overwrite"
    whatever the request's own headers say. A request that names no path is refused.
    """
    create_only = False
    checked = False
    for target in targets:
        check(principal, target.path, target.operations)
        checked = True
        if (
            target.creates
            and principal.capabilities.restricted
            and not allows(principal.capabilities, "modify", target.path.text)
        ):
            create_only = True
    if not checked:
        raise BadRequest("the request names no path to check")
    return create_only
