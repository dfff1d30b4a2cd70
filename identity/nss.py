"""Render ``passwd`` and ``group`` file contents (pure functions, no I/O).

For containers that must resolve names to ids (``ls -l``, ``id``, shells): the operator writes
them to a ConfigMap, ``kubepie nss-sync`` to files.

* ``passwd``: ``name:x:uid:gid:gecos:home:shell``; ``group``: ``name:x:gid:member,member``.
* Deterministic: lines sorted by (id, name), members sorted and without duplicates, one ``\\n``
  after every line; the same directory always gives the same bytes.
* Refused with :class:`~identity.errors.InvalidEntryError` (never escaped or dropped, since
  either would change who a line describes): a ``:``, newline, carriage return or NUL in any
  field; an empty name; a ``,`` or whitespace in a user, group or member name; a negative id; the
  same name twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from identity.errors import InvalidEntryError
from identity.models import Group, User

_FORBIDDEN = (":", "\n", "\r", "\x00")
_MAX_ID = 2**32 - 2


def _field(value: str, what: str) -> str:
    for char in _FORBIDDEN:
        if char in value:
            raise InvalidEntryError(f"{what}: {value!r} contains {char!r}")
    return value


def _name(value: str, what: str) -> str:
    _field(value, what)
    if not value:
        raise InvalidEntryError(f"{what}: empty name")
    if "," in value or any(c.isspace() for c in value):
        raise InvalidEntryError(f"{what}: {value!r} contains ',' or whitespace")
    return value


def _id(value: int, what: str) -> str:
    if not 0 <= value <= _MAX_ID:
        raise InvalidEntryError(f"{what}: {value} is not a valid id")
    return str(value)


def passwd_line(user: User) -> str:
    """One ``passwd`` line (without the newline) for ``user``."""
    name = _name(user.username, "passwd name")
    where = f"passwd entry {name!r}"
    return ":".join(
        (
            name,
            "x",
            _id(user.uid, f"{where} uid"),
            _id(user.gid, f"{where} gid"),
            _field(user.gecos, f"{where} gecos"),
            _field(user.home, f"{where} home"),
            _field(user.shell, f"{where} shell"),
        )
    )


def group_line(group: Group) -> str:
    """One ``group`` line (without the newline) for ``group``."""
    name = _name(group.name, "group name")
    where = f"group entry {name!r}"
    members = sorted({_name(m, f"{where} member") for m in group.members})
    return ":".join((name, "x", _id(group.gid, f"{where} gid"), ",".join(members)))


def render_passwd(users: Iterable[User]) -> str:
    """The contents of a ``passwd`` file for ``users``; see the module docstring."""
    ordered = sorted(users, key=lambda u: (u.uid, u.username))
    _unique((u.username for u in ordered), "passwd")
    return "".join(passwd_line(u) + "\n" for u in ordered)


def render_group(groups: Iterable[Group]) -> str:
    """The contents of a ``group`` file for ``groups``; see the module docstring."""
    ordered = sorted(groups, key=lambda g: (g.gid, g.name))
    _unique((g.name for g in ordered), "group")
    return "".join(group_line(g) + "\n" for g in ordered)


def _unique(names: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidEntryError(f"{what}: {name!r} appears twice")
        seen.add(name)
