"""The ``Directory`` protocol: where usernames become POSIX accounts and groups.

Implementations: :class:`identity.static.StaticDirectory` (a YAML file, the embedded default)
and :class:`identity.ldap.LdapDirectory` (ldap3), both usually wrapped in
:class:`identity.cache.CachedDirectory` (bounded TTL cache).

Contract for implementations:

* methods are coroutines; blocking client libraries run in a worker thread;
* an unknown user is ``None`` (not an error); an unreachable or failing directory raises
  :class:`identity.errors.DirectoryUnavailableError`, never returns a guess or an empty answer;
* group members are usernames, whatever the directory stores (``memberUid`` or ``member`` DNs).
"""

from __future__ import annotations

from typing import Protocol

from identity.models import Group, User


class Directory(Protocol):
    async def lookup_user(self, username: str) -> User | None:
        """The account called ``username``, or ``None`` if there is none."""
        ...

    async def groups_for(self, user: User) -> tuple[Group, ...]:
        """Every group ``user`` belongs to: the primary group and the supplementary ones."""
        ...

    async def all_users(self) -> tuple[User, ...]:
        """Every account, for NSS rendering."""
        ...

    async def all_groups(self) -> tuple[Group, ...]:
        """Every group, for NSS rendering."""
        ...
