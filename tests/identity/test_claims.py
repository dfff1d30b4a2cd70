"""Claims → Identity: the pure mapping's edge cases, and mapping by username via a directory."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from identity.claims import ClaimsPolicy, DirectoryIdentityMapper, identity_from_claims
from identity.errors import DirectoryUnavailableError, MappingError
from identity.models import Group, Identity, User, ValidatedToken
from identity.static import StaticDirectory

ISSUER = "https://idp.example"
ALICE = {
    "preferred_username": "alice",
    "uid": 10001,
    "gid": 10001,
    "gids": [10001, 20001, 20002],
    "groups": ["alice", "physics", "beamline-x"],
}
POLICY = ClaimsPolicy()


def token(claims: dict[str, Any], sub: str = "s-alice") -> ValidatedToken:
    return ValidatedToken(ISSUER, sub, claims, (), 2e9)


def test_claims_map_to_a_sorted_identity() -> None:
    assert identity_from_claims(token(ALICE), POLICY) == Identity(
        ISSUER, "s-alice", "alice", 10001, 10001, (10001, 20001, 20002),
        ("alice", "beamline-x", "physics"),
    )  # fmt: skip


def test_primary_gid_is_always_among_the_gids() -> None:
    identity = identity_from_claims(token({**ALICE, "gids": [20001]}), POLICY)
    assert identity.gids == (10001, 20001)
    bare = {k: v for k, v in ALICE.items() if k not in {"gids", "groups"}}
    assert identity_from_claims(token(bare), POLICY).gids == (10001,)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"uid": None}, "token has no 'uid' claim"),
        ({"gid": None}, "token has no 'gid' claim"),
        ({"preferred_username": None}, "token has no user ('preferred_username' claim missing)"),
        ({"preferred_username": ""}, "claim 'preferred_username' is not a valid username"),
        ({"preferred_username": "../root"}, "claim 'preferred_username' is not a valid username"),
        ({"preferred_username": 7}, "claim 'preferred_username' is not a valid username"),
        ({"uid": True}, "claim 'uid' is not an integer"),
        ({"uid": "10001"}, "claim 'uid' is not an integer"),
        ({"uid": 10001.0}, "claim 'uid' is not an integer"),
        ({"gid": False}, "claim 'gid' is not an integer"),
        ({"gids": [20001, True]}, "claim 'gids' is not a list of integers"),
        ({"gids": "20001"}, "claim 'gids' is not a list of integers"),
        ({"groups": "physics"}, "claim 'groups' is not a list of names"),
        ({"groups": ["physics", 1]}, "claim 'groups' is not a list of names"),
        ({"uid": 0}, "uid 0 is never mapped"),
        ({"uid": -5}, "uid is out of range"),
        ({"uid": 2**32 - 1}, "uid is out of range"),
        ({"uid": 999}, "uid is below the minimum uid 1000"),
        ({"gid": 0}, "gid 0 is never mapped"),
        ({"gids": [10001, 0]}, "gid 0 is never mapped"),
        ({"gids": [-1]}, "gid is out of range"),
    ],
)
def test_bad_claims_are_refused_with_a_reason(change: dict[str, Any], reason: str) -> None:
    claims = {k: v for k, v in {**ALICE, **change}.items() if v is not None}
    with pytest.raises(MappingError) as caught:
        identity_from_claims(token(claims), POLICY)
    assert str(caught.value) == reason
    assert caught.value.status == 403


def test_policy_names_the_claims_and_limits() -> None:
    custom = ClaimsPolicy(
        username_claim="sub_name",
        uid_claim="uidNumber",
        gid_claim="gidNumber",
        gids_claim="gidNumbers",
        groups_claim="memberOf",
        min_uid=500,
        min_gid=500,
    )
    claims = {"sub_name": "svc", "uidNumber": 500, "gidNumber": 500, "memberOf": ["svc"]}
    identity = identity_from_claims(token(claims), custom)
    assert (identity.username, identity.uid, identity.gids, identity.groups) == (
        "svc", 500, (500,), ("svc",),
    )  # fmt: skip
    with pytest.raises(MappingError, match="below the minimum uid 1000"):
        identity_from_claims(token(claims), replace(custom, min_uid=1000))


def test_allowed_groups_restrict_who_is_mapped() -> None:
    only_physics = ClaimsPolicy(allowed_groups=frozenset({"physics"}))
    assert identity_from_claims(token(ALICE), only_physics).username == "alice"
    carol = {**ALICE, "preferred_username": "carol", "groups": ["carol", "beamline-x"]}
    with pytest.raises(MappingError, match="none of the allowed groups"):
        identity_from_claims(token(carol), only_physics)
    with pytest.raises(MappingError, match="none of the allowed groups"):
        identity_from_claims(token({**ALICE, "groups": []}), only_physics)


# -- by username, through a directory -----------------------------------------------------------

DIRECTORY = """
users:
  alice: {uid: 10001, gid: 10001, home: /home/alice}
  svc: {uid: 500, gid: 500, home: /srv}
groups:
  alice: {gid: 10001}
  svc: {gid: 500}
  physics: {gid: 20001, members: [alice]}
  beamline-x: {gid: 20002, members: [alice]}
"""


class UnreachableDirectory:
    """A directory whose server is down, as every Directory must report it."""

    async def lookup_user(self, username: str) -> User | None:
        raise DirectoryUnavailableError("directory down")

    async def groups_for(self, user: User) -> tuple[Group, ...]:
        raise DirectoryUnavailableError("directory down")

    async def all_users(self) -> tuple[User, ...]:
        raise DirectoryUnavailableError("directory down")

    async def all_groups(self) -> tuple[Group, ...]:
        raise DirectoryUnavailableError("directory down")


async def test_directory_mapping_takes_ids_from_the_directory_not_the_token() -> None:
    mapper = DirectoryIdentityMapper(StaticDirectory.parse(DIRECTORY), POLICY)
    lying = {"preferred_username": "alice", "uid": 0, "gid": 0}
    assert await mapper.identity_for(token(lying)) == identity_from_claims(token(ALICE), POLICY)


async def test_directory_mapping_refuses_unknown_and_system_users() -> None:
    mapper = DirectoryIdentityMapper(StaticDirectory.parse(DIRECTORY), POLICY)
    with pytest.raises(MappingError, match="user is not in the directory"):
        await mapper.identity_for(token({"preferred_username": "mallory"}))
    with pytest.raises(MappingError, match="below the minimum uid"):
        await mapper.identity_for(token({"preferred_username": "svc"}))
    with pytest.raises(MappingError, match="token has no user"):
        await mapper.identity_for(token({"client_id": "kubepie-service"}))


async def test_a_directory_that_is_down_is_a_503() -> None:
    mapper = DirectoryIdentityMapper(UnreachableDirectory(), POLICY)
    with pytest.raises(DirectoryUnavailableError) as caught:
        await mapper.identity_for(token(ALICE))
    assert caught.value.status == 503


# -- system groups (min_gid) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"gids": [10001, 6, 42]}, "supplementary gids 6, 42 are below the minimum gid 1000"),
        ({"gids": [10001, 999]}, "supplementary gids 999 are below the minimum gid 1000"),
        ({"gid": 42, "gids": [10001]}, "primary gid 42 is below the minimum gid 1000"),
    ],
)
def test_system_groups_are_refused_not_trimmed(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message) as caught:
        identity_from_claims(token({**ALICE, **claims}), POLICY)
    assert caught.value.status == 403


def test_low_gids_pass_only_when_allowed_by_number() -> None:
    users = replace(POLICY, allowed_low_gids=frozenset({100}))
    identity = identity_from_claims(token({**ALICE, "gid": 100, "gids": [100, 20001]}), users)
    assert (identity.gid, identity.gids) == (100, (100, 20001))
    with pytest.raises(MappingError, match="supplementary gids 6 are below"):
        identity_from_claims(token({**ALICE, "gid": 100, "gids": [100, 6]}), users)
    lower = replace(POLICY, min_gid=5)
    assert identity_from_claims(token({**ALICE, "gids": [6]}), lower).gids == (6, 10001)


async def test_directory_mapping_refuses_a_member_of_a_system_group() -> None:
    with_disk = DIRECTORY + "  disk: {gid: 6, members: [alice]}\n"
    mapper = DirectoryIdentityMapper(StaticDirectory.parse(with_disk), POLICY)
    with pytest.raises(MappingError, match="supplementary gids 6 are below"):
        await mapper.identity_for(token({"preferred_username": "alice"}))
    allowed = replace(POLICY, allowed_low_gids=frozenset({6}))
    mapper = DirectoryIdentityMapper(StaticDirectory.parse(with_disk), allowed)
    assert 6 in (await mapper.identity_for(token({"preferred_username": "alice"}))).gids
