"""``StaticDirectory``: accounts and groups from a YAML file (the embedded default directory).

File format::

    users:
      alice: {uid: 10001, gid: 10001, home: /home/alice, shell: /bin/bash, gecos: Alice}
    groups:
      alice: {gid: 10001}
      physics: {gid: 20001, members: [alice, bob]}

``home`` is required and absolute; ``shell`` defaults to ``/bin/sh``, ``gecos`` to empty. A
user's groups are the group whose gid is the user's primary gid plus every group listing the
user. The whole file is validated when it is loaded; every refusal is an
:class:`~identity.errors.InvalidEntryError` whose message names the file and the bad key
(``users.alice.uid``). Refused: unknown keys, non-integer or out-of-range ids (``true`` is
not 1), names and fields that cannot appear in ``passwd``/``group`` files, two users with one
uid, two groups with one gid, and members that are not users of the file (a typo must not
silently drop a membership).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from identity.errors import InvalidEntryError
from identity.models import Group, User

_MAX_ID = 2**32 - 2
#: What a user or group name may not contain: NSS field and member separators, whitespace,
#: path separators and NUL.
_BAD_NAME = re.compile(r"[\s:,/\x00]")
#: What no field may contain: it would split or end a ``passwd`` line.
_FIELD_SEPARATORS = (":", "\n", "\r", "\x00")


class _UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    uid: int = Field(ge=0, le=_MAX_ID)
    gid: int = Field(ge=0, le=_MAX_ID)
    home: str
    shell: str = "/bin/sh"
    gecos: str = ""


class _GroupEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    gid: int = Field(ge=0, le=_MAX_ID)
    members: list[str] = Field(default_factory=list)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    users: dict[str, _UserEntry] = Field(default_factory=dict)
    groups: dict[str, _GroupEntry] = Field(default_factory=dict)


class StaticDirectory:
    """A :class:`~identity.directory.Directory` held in memory; build it with :meth:`load`."""

    def __init__(self, users: Iterable[User], groups: Iterable[Group]) -> None:
        self._users = {u.username: u for u in users}
        self._groups = tuple(sorted(groups, key=lambda g: (g.gid, g.name)))

    @classmethod
    def load(cls, path: str | Path) -> StaticDirectory:
        """Read and validate ``path``; see the module docstring for what is refused."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidEntryError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<static directory>") -> StaticDirectory:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidEntryError(f"{source}: not valid YAML: {exc}") from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise InvalidEntryError(f"{source}: the top level must be a mapping")
        try:
            data = _File.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidEntryError(f"{source}: {where}: {first['msg']}") from None
        return cls(_users(data, source), _groups(data, source))

    async def lookup_user(self, username: str) -> User | None:
        return self._users.get(username)

    async def groups_for(self, user: User) -> tuple[Group, ...]:
        return tuple(g for g in self._groups if g.gid == user.gid or user.username in g.members)

    async def all_users(self) -> tuple[User, ...]:
        return tuple(sorted(self._users.values(), key=lambda u: (u.uid, u.username)))

    async def all_groups(self) -> tuple[Group, ...]:
        return self._groups


def _check_name(name: str, where: str) -> None:
    if not name or _BAD_NAME.search(name):
        raise InvalidEntryError(f"{where}: {name!r} is not a usable user or group name")


def _users(data: _File, source: str) -> list[User]:
    users: list[User] = []
    seen: dict[int, str] = {}
    for name, entry in data.users.items():
        where = f"{source}: users.{name}"
        _check_name(name, f"{source}: users")
        if not entry.home.startswith("/"):
            raise InvalidEntryError(f"{where}.home: {entry.home!r} is not an absolute path")
        for key in ("home", "shell", "gecos"):
            value = getattr(entry, key)
            if any(char in value for char in _FIELD_SEPARATORS):
                raise InvalidEntryError(f"{where}.{key}: {value!r} contains ':' or a line break")
        if entry.uid in seen:
            raise InvalidEntryError(
                f"{where}.uid: {entry.uid} is also the uid of {seen[entry.uid]}"
            )
        seen[entry.uid] = name
        users.append(User(name, entry.uid, entry.gid, entry.gecos, entry.home, entry.shell))
    return users


def _groups(data: _File, source: str) -> list[Group]:
    groups: list[Group] = []
    seen: dict[int, str] = {}
    for name, entry in data.groups.items():
        where = f"{source}: groups.{name}"
        _check_name(name, f"{source}: groups")
        if entry.gid in seen:
            raise InvalidEntryError(
                f"{where}.gid: {entry.gid} is also the gid of {seen[entry.gid]}"
            )
        seen[entry.gid] = name
        for member in entry.members:
            if member not in data.users:
                raise InvalidEntryError(f"{where}.members: {member!r} is not a user of this file")
        groups.append(Group(name, entry.gid, tuple(sorted(set(entry.members)))))
    return groups
