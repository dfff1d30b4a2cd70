"""Identity throughput: token validations/s (warm JWKS) and directory lookups/s (real slapd).

Starts the real test servers (npm oidc-provider under node, Debian slapd), then prints:

* token validations per second through :class:`identity.tokens.TokenValidator` with a warm key
  cache, next to a bare ``jwt.decode`` with the same key in the same run (the library floor);
  the target is ≥ 5,000 validations/s on one core;
* directory lookups per second (user + groups) against slapd, uncached and through
  :class:`identity.cache.CachedDirectory`.

Run from the repository root: ``.venv/bin/python -m benchmarks.identity [--seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import jwt

from identity.cache import CachedDirectory
from identity.claims import ClaimsPolicy, identity_from_claims
from identity.ldap import LdapDirectory, LdapSettings
from identity.tokens import IssuerSettings, TokenSettings, TokenValidator
from tests.fixtures.oidc import AUDIENCE, OidcProvider
from tests.fixtures.slapd import Slapd

TOKEN_TARGET = 5000.0


async def rate(call: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Calls per second of ``call`` awaited back to back for about ``seconds``."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            await call()
        done += 50
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def sync_rate(call: Callable[[], object], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            call()
        done += 50
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


async def bench_tokens(provider: OidcProvider, seconds: float) -> None:
    tokens = await provider.login("alice")
    token = tokens.access_token
    settings = TokenSettings((IssuerSettings(provider.issuer, (AUDIENCE,)),))
    policy = ClaimsPolicy()
    async with httpx.AsyncClient(trust_env=False) as http:
        validator = TokenValidator(settings, http)
        await validator.validate(token)  # warm the discovery and JWKS cache

        async def ours() -> object:
            return identity_from_claims(await validator.validate(token), policy)

        key = provider.signing_key.private_key.public_key()

        def floor() -> object:
            return jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE)

        ours_rate = await rate(ours, seconds)
        floor_rate = sync_rate(floor, seconds)
    print(f"token validation + mapping, warm JWKS : {ours_rate:10.0f} /s")
    print(f"bare jwt.decode, same key (baseline)  : {floor_rate:10.0f} /s")
    print(f"ratio ours / baseline                 : {ours_rate / floor_rate:10.2f}")
    verdict = "meets" if ours_rate >= TOKEN_TARGET else "MISSES"
    print(f"target {TOKEN_TARGET:.0f}/s on one core        : {verdict}")


async def bench_directory(slapd: Slapd, seconds: float) -> None:
    settings = LdapSettings(
        urls=(slapd.url,),
        user_base=slapd.user_base,
        group_base=slapd.group_base,
        bind_dn=slapd.bind_dn,
        bind_password=slapd.bind_password,
    )
    direct = LdapDirectory(settings)
    cached = CachedDirectory(direct, ttl=300.0)

    async def lookup(directory: LdapDirectory | CachedDirectory) -> object:
        user = await directory.lookup_user("alice")
        assert user is not None
        return await directory.groups_for(user)

    uncached_rate = await rate(lambda: lookup(direct), seconds)
    cached_rate = await rate(lambda: lookup(cached), seconds)
    print(f"directory user+groups, uncached       : {uncached_rate:10.0f} /s")
    print(f"directory user+groups, cached         : {cached_rate:10.0f} /s")
    print(f"ratio cached / uncached               : {cached_rate / uncached_rate:10.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubepie-bench-") as tmp:
        provider = OidcProvider(Path(tmp) / "oidc").start()
        (Path(tmp) / "slapd").mkdir()
        slapd = Slapd(Path(tmp) / "slapd")
        try:
            slapd.prepare()
            slapd.start()
            await bench_tokens(provider, args.seconds)
            await bench_directory(slapd, args.seconds)
        finally:
            provider.stop()
            slapd.stop()


if __name__ == "__main__":
    asyncio.run(main())
