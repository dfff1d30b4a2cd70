"""The demo users and groups: the shared numbers of the project's test population. Pure data.

As root the demo has three users, alice, bob and carol, with personal groups and two shared
groups (``physics``: alice and bob; ``beamline-x``: alice and carol). Without root it has one
user, the invoking account, because an unprivileged process can only serve its own files.
Each user logs in at the dev issuer with a fixed password printed at start: this is a demo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The label on every page and start-up log line of the dev issuer, and on the demo's banner.
DEV_WARNING = "DEVELOPMENT ISSUER — NOT FOR PRODUCTION"


@dataclass(frozen=True, slots=True)
class DemoUser:
    """One demo account: POSIX numbers, group memberships (name → gid) and its password."""

    username: str
    uid: int
    gid: int
    groups: Mapping[str, int]
    password: str
    full_name: str = ""

    @property
    def gids(self) -> tuple[int, ...]:
        """Primary and supplementary gids, sorted (the ``gids`` claim)."""
        return tuple(sorted({self.gid, *self.groups.values()}))

    @property
    def group_names(self) -> tuple[str, ...]:
        """The shared groups, sorted (the ``groups`` claim).

        Personal groups are left out of names (not of ``gids``): each group name becomes a
        ``group-<name>`` mount, and a personal group has no group area.
        """
        return tuple(sorted(self.groups))


@dataclass(frozen=True, slots=True)
class Population:
    """The demo's users; ``multi_user`` is false for the single-user (non-root) demo."""

    users: tuple[DemoUser, ...]
    multi_user: bool

    def get(self, username: str) -> DemoUser | None:
        return next((u for u in self.users if u.username == username), None)

    @property
    def shared_groups(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """Group name → (gid, member usernames) of the groups besides the personal ones."""
        found: dict[str, tuple[int, tuple[str, ...]]] = {}
        for user in self.users:
            for name, gid in user.groups.items():
                members = found.get(name, (gid, ()))[1]
                found[name] = (gid, (*members, user.username))
        return found


def _user(name: str, uid: int, groups: Mapping[str, int]) -> DemoUser:
    return DemoUser(name, uid, uid, dict(groups), f"{name}-demo", name.capitalize())


#: The multi-user population (needs root to run each user's server as that user).
DEMO_USERS = Population(
    (
        _user("alice", 10001, {"physics": 20001, "beamline-x": 20002}),
        _user("bob", 10002, {"physics": 20001}),
        _user("carol", 10003, {"beamline-x": 20002}),
    ),
    multi_user=True,
)


def single_user(username: str, uid: int, gid: int) -> Population:
    """The population of a demo run without root: the invoking account alone."""
    return Population((DemoUser(username, uid, gid, {}, f"{username}-demo"),), multi_user=False)


def claims_for(user: DemoUser) -> dict[str, Any]:
    """The identity claims the dev issuer puts in every token of ``user``."""
    return {
        "preferred_username": user.username,
        "name": user.full_name or user.username,
        "email": f"{user.username}@demo.invalid",
        "uid": user.uid,
        "gid": user.gid,
        "gids": list(user.gids),
        "groups": list(user.group_names),
    }


def static_directory(population: Population, home_of: Mapping[str, str]) -> dict[str, Any]:
    """The static directory file (see :mod:`identity.static`) describing ``population``.

    Only the shared groups are listed, for the reason given in :attr:`DemoUser.group_names`.
    """
    users = {
        u.username: {"uid": u.uid, "gid": u.gid, "home": home_of[u.username], "gecos": u.full_name}
        for u in population.users
    }
    groups: dict[str, dict[str, Any]] = {}
    for name, (gid, members) in population.shared_groups.items():
        groups[name] = {"gid": gid, "members": sorted(members)}
    return {"users": users, "groups": groups}
