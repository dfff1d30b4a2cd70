"""``CachedDirectory``: a bounded TTL cache in front of any :class:`~identity.directory.Directory`.

Semantics, exactly:

* **Positive answers** (a user, a user's groups, the full user and group lists) are kept for
  ``ttl`` seconds from the moment the inner directory answered.
* **Negative answers** (``lookup_user`` → ``None``) are kept for ``negative_ttl`` seconds
  (default: a tenth of ``ttl``), so a freshly created account works soon while a flood of
  unknown names still does not reach the directory.
* **Errors are never cached and never replaced by a guess.** If the inner directory raises
  (for instance :class:`~identity.errors.DirectoryUnavailableError`), the error reaches the
  caller and the next call asks again. An entry past its TTL is never served, not even when the
  refresh fails: a stale answer could keep a removed user or a revoked group alive for as long as
  the directory is down. Within its TTL an answer is served even if the directory has since gone
  down: that is what the TTL promises and bounds.
* **Bounded size**: at most ``max_entries`` entries over all kinds; when full, the least
  recently used entry is evicted first. Expired entries are dropped when met.
* **Single flight**: concurrent misses for the same key share one call to the inner directory
  (its result or its error goes to every waiter; a waiter that is cancelled does not cancel the
  call for the others).
* ``groups_for`` is keyed by the whole :class:`~identity.models.User` value, so a user whose
  uid or primary gid changed is a different key.

Time comes from ``clock`` (default :func:`time.monotonic`), injected so the owner can share one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from identity.directory import Directory
from identity.models import Group, User

T = TypeVar("T")


class CachedDirectory:
    """A :class:`~identity.directory.Directory` that remembers answers; see the module docstring.

    ``ttl``: seconds an answer is reused; 300 bounds both the load on the directory and how
    long a removed account or membership still applies. ``max_entries``: 10,000 answers are a
    few megabytes and cover the active users of a large site. ``negative_ttl``: seconds an
    unknown username is remembered, a tenth of ``ttl`` unless given; 0 never remembers it.
    """

    def __init__(
        self,
        inner: Directory,
        ttl: float = 300.0,
        max_entries: int = 10_000,
        *,
        negative_ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError("cache ttl: must be a positive number of seconds")
        negative = ttl / 10 if negative_ttl is None else negative_ttl
        if not 0 <= negative <= ttl:
            raise ValueError("cache negative_ttl: must be between 0 and ttl")
        if max_entries < 1:
            raise ValueError("cache max_entries: must be at least 1")
        self._inner = inner
        self._ttl = ttl
        self._negative_ttl = negative
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every answer (calls in flight still complete, and are cached)."""
        self._entries.clear()

    async def lookup_user(self, username: str) -> User | None:
        return await self._get(("user", username), lambda: self._inner.lookup_user(username))

    async def groups_for(self, user: User) -> tuple[Group, ...]:
        return await self._get(("groups", user), lambda: self._inner.groups_for(user))

    async def all_users(self) -> tuple[User, ...]:
        return await self._get(("all_users",), self._inner.all_users)

    async def all_groups(self) -> tuple[Group, ...]:
        return await self._get(("all_groups",), self._inner.all_groups)

    async def _get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None:
            expires, value = hit
            if now < expires:
                self._entries.move_to_end(key)
                return cast(T, value)
            del self._entries[key]
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._load(key, load))
            self._inflight[key] = future
            future.add_done_callback(lambda f: self._finished(key, f))
        return cast(T, await asyncio.shield(future))

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        value = await load()
        ttl = self._negative_ttl if value is None else self._ttl
        if ttl > 0:
            self._entries[key] = (self._clock() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def _finished(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved here so a failure nobody awaits is not reported twice
