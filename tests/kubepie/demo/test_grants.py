"""Authorization codes, refresh tokens and PKCE of the dev issuer (pure, with a fake clock)."""

from __future__ import annotations

import pytest

from kubepie.demo.errors import GrantError
from kubepie.demo.grants import CODE_LIFETIME, Grant, GrantStore, pkce_matches, s256

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def grant(**changes: object) -> Grant:
    values: dict[str, object] = {
        "client_id": "router",
        "username": "alice",
        "scope": ("openid",),
        "auth_time": 0.0,
        "redirect_uri": "http://127.0.0.1:8080/callback",
        "code_challenge": s256(VERIFIER),
    }
    values.update(changes)
    return Grant(**values)  # type: ignore[arg-type]


def test_rfc7636_example_challenge() -> None:
    assert s256(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce_matches(VERIFIER, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


@pytest.mark.parametrize("verifier", ["short", VERIFIER[:42], VERIFIER + "!", "a" * 129])
def test_malformed_verifiers_never_match(verifier: str) -> None:
    assert not pkce_matches(verifier, s256(verifier))  # the right challenge, a bad verifier


def test_codes_expire_after_their_lifetime() -> None:
    clock = Clock()
    store = GrantStore(clock=clock)
    fresh = store.issue_code(grant())
    stale = store.issue_code(grant())
    clock.now += CODE_LIFETIME - 1
    assert store.redeem_code(fresh, "router", grant().redirect_uri, VERIFIER).username == "alice"
    clock.now += 2
    with pytest.raises(GrantError, match="unknown, used or expired"):
        store.redeem_code(stale, "router", grant().redirect_uri, VERIFIER)


def test_a_code_is_bound_to_its_client_and_redirect_uri() -> None:
    store = GrantStore()
    code = store.issue_code(grant())
    with pytest.raises(GrantError, match="another client"):
        store.redeem_code(code, "other", grant().redirect_uri, VERIFIER)
    code = store.issue_code(grant())
    with pytest.raises(GrantError, match="redirect_uri"):
        store.redeem_code(code, "router", "http://127.0.0.1:8080/other", VERIFIER)


def test_refresh_tokens_expire_and_logout_forgets_them() -> None:
    clock = Clock()
    store = GrantStore(clock=clock, refresh_lifetime=60)
    old = store.issue_refresh_token(grant())
    clock.now += 61
    with pytest.raises(GrantError):
        store.redeem_refresh_token(old, "router")
    kept = store.issue_refresh_token(grant(username="bob"))
    dropped = store.issue_refresh_token(grant())
    store.revoke_user("router", "alice")
    with pytest.raises(GrantError):
        store.redeem_refresh_token(dropped, "router")
    assert store.redeem_refresh_token(kept, "router").username == "bob"
