"""``LdapDirectory`` against the real session slapd (see tests/fixtures/slapd.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from identity.errors import DirectoryUnavailableError, InvalidEntryError
from identity.ldap import LdapDirectory
from identity.models import Group, User
from tests.fixtures.slapd import Slapd
from tests.identity.helpers import settings_for
from tests.support import free_port


@pytest.fixture
def directory(slapd: Slapd) -> LdapDirectory:
    return LdapDirectory(settings_for(slapd))


ALICE = User("alice", 10001, 10001, "Alice Anders", "/home/alice", "/bin/bash")


async def test_user_lookup_reads_the_posix_account(directory: LdapDirectory) -> None:
    assert await directory.lookup_user("alice") == ALICE
    svc = await directory.lookup_user("svc")
    assert svc is not None
    assert (svc.uid, svc.gid) == (500, 500)


async def test_unknown_user_is_none_and_names_match_exactly(directory: LdapDirectory) -> None:
    assert await directory.lookup_user("nobody-here") is None
    # LDAP's uid matching ignores case; a different spelling must not become alice.
    assert await directory.lookup_user("ALICE") is None


@pytest.mark.parametrize("name", ["*)(uid=*", "*", "alice)(uid=*", "a*", "alice\\", "\x00"])
async def test_filter_injection_finds_nothing(directory: LdapDirectory, name: str) -> None:
    assert await directory.lookup_user(name) is None


async def test_injected_username_matches_no_groups(directory: LdapDirectory) -> None:
    # Unescaped, (memberUid=*) would match physics.
    intruder = User("*", 99999, 99999, home="/nonexistent")
    assert await directory.groups_for(intruder) == ()


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("alice", {("alice", 10001), ("physics", 20001), ("beamline-x", 20002)}),
        ("bob", {("bob", 10002), ("physics", 20001)}),
        ("carol", {("carol", 10003), ("beamline-x", 20002)}),
        ("dave", {("dave", 10004)}),
        ("svc", {("svc", 500)}),
    ],
)
async def test_groups_come_from_gid_memberuid_and_member_dns(
    directory: LdapDirectory, username: str, expected: set[tuple[str, int]]
) -> None:
    user = await directory.lookup_user(username)
    assert user is not None
    groups = await directory.groups_for(user)
    assert {(g.name, g.gid) for g in groups} == expected


async def test_member_dns_and_memberuids_become_usernames(directory: LdapDirectory) -> None:
    groups = {g.name: g for g in await directory.all_groups()}
    assert groups["physics"] == Group("physics", 20001, ("alice", "bob"))
    assert groups["beamline-x"] == Group("beamline-x", 20002, ("alice", "carol"))
    assert groups["dave"] == Group("dave", 10004, ())
    users = await directory.all_users()
    assert [u.username for u in users] == ["svc", "alice", "bob", "carol", "dave"]


@pytest.fixture
def odd_entries(slapd: Slapd) -> Iterator[None]:
    """An account named by ``cn=`` (its member DN needs a real lookup), one outside the user
    base, two entries that both claim uid=twin, an account with a negative uidNumber, and a
    group listing all kinds of member DNs."""
    people, groups, base = slapd.user_base, slapd.group_base, slapd.suffix

    def account(dn: str, uid: str, number: int) -> str:
        return (
            f"dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
            f"cn: {uid}\nsn: {uid}\nuid: {uid}\nuidNumber: {number}\ngidNumber: 30000\n"
            f"homeDirectory: /srv/{uid}\n\n"
        )

    accounts = [
        (f"cn=robot1,{people}", "robo", 30001),
        (f"cn=outsider,ou=robots,{base}", "outsider", 30002),
        (f"cn=twin,{people}", "twin", 30003),
        (f"uid=twin,{people}", "twin", 30004),
        (f"uid=negative,{people}", "negative", -5),
    ]
    robots_ou = f"ou=robots,{base}"
    ldif = f"dn: {robots_ou}\nchangetype: add\nobjectClass: organizationalUnit\nou: robots\n\n"
    ldif += "".join(account(dn, uid, number) for dn, uid, number in accounts)
    ldif += (
        f"dn: cn=robots,{groups}\nchangetype: add\nobjectClass: groupOfNames\n"
        "objectClass: posixGroup\ncn: robots\ngidNumber: 30100\n"
        f"member: cn=robot1,{people}\nmember: cn=physics,{groups}\n"
        f"member: cn=outsider,ou=robots,{base}\nmember: uid=carol,{people}\n\n"
        # A second name for robot1: its member DN resolves to the first one, robo.
        f"dn: cn=robot1,{people}\nchangetype: modify\nadd: uid\nuid: robo-alias\n"
    )
    slapd.modify(ldif)
    yield
    dns = [f"cn=robots,{groups}", *(dn for dn, _, _ in accounts), robots_ou]
    slapd.modify("".join(f"dn: {dn}\nchangetype: delete\n\n" for dn in dns))


@pytest.mark.usefixtures("odd_entries")
async def test_member_dns_are_read_and_non_accounts_left_out(directory: LdapDirectory) -> None:
    groups = {g.name: g for g in await directory.all_groups()}
    # cn=robot1 is read from the server (uid robo); the group entry and the account outside
    # the user base are not accounts of this directory.
    assert groups["robots"].members == ("carol", "robo")
    robo = await directory.lookup_user("robo")
    assert robo is not None
    assert {g.name for g in await directory.groups_for(robo)} == {"robots"}
    alias = await directory.lookup_user("robo-alias")
    assert alias is not None
    assert alias.uid == robo.uid
    # Membership by DN holds for every name of the account, not only the one the DN resolves to.
    assert {g.name for g in await directory.groups_for(alias)} == {"robots"}
    assert await directory.lookup_user("outsider") is None


@pytest.mark.usefixtures("odd_entries")
async def test_ambiguous_or_malformed_accounts_fail_closed(directory: LdapDirectory) -> None:
    with pytest.raises(InvalidEntryError, match="several LDAP entries"):
        await directory.lookup_user("twin")
    with pytest.raises(InvalidEntryError, match="uidNumber -5 is out of range"):
        await directory.lookup_user("negative")
    # Listing everything leaves the malformed account out instead of failing for everyone.
    names = [u.username for u in await directory.all_users()]
    assert "negative" not in names
    assert "robo" in names


async def test_wrong_password_is_unavailable_without_the_password(slapd: Slapd) -> None:
    directory = LdapDirectory(settings_for(slapd, bind_password="not-the-Secret-123"))
    with pytest.raises(DirectoryUnavailableError, match="invalidCredentials") as caught:
        await directory.lookup_user("alice")
    assert "not-the-Secret-123" not in str(caught.value)
    assert "not-the-Secret-123" not in repr(settings_for(slapd))


async def test_anonymous_reader_is_refused_not_told_nobody_exists(slapd: Slapd) -> None:
    # The ACL lets only bound clients read: anonymous searches see no base at all.
    directory = LdapDirectory(settings_for(slapd, bind_dn=None, bind_password=""))
    with pytest.raises(DirectoryUnavailableError, match="NoSuchObject"):
        await directory.lookup_user("alice")


async def test_failover_to_the_next_url(slapd: Slapd) -> None:
    closed = f"ldap://127.0.0.1:{free_port()}"
    directory = LdapDirectory(settings_for(slapd, urls=(closed, slapd.url)))
    assert await directory.lookup_user("alice") == ALICE
    only_closed = LdapDirectory(settings_for(slapd, urls=(closed,)))
    with pytest.raises(DirectoryUnavailableError, match="no LDAP server reachable"):
        await only_closed.lookup_user("alice")


async def test_start_tls_and_ldaps_verify_the_server(slapd: Slapd) -> None:
    ca = str(slapd.ca_file)
    start_tls = LdapDirectory(settings_for(slapd, start_tls=True, ca_file=ca))
    assert await start_tls.lookup_user("alice") == ALICE
    ldaps = LdapDirectory(settings_for(slapd, urls=(slapd.ldaps_url,), ca_file=ca))
    assert await ldaps.lookup_user("alice") == ALICE
    by_name = slapd.ldaps_url.replace("127.0.0.1", "localhost")
    assert await LdapDirectory(settings_for(slapd, urls=(by_name,), ca_file=ca)).all_users()
    # Without our CA the self-signed chain is refused, StartTLS and ldaps alike.
    untrusted = LdapDirectory(settings_for(slapd, start_tls=True))
    with pytest.raises(DirectoryUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusted.lookup_user("alice")
    untrusted_ldaps = LdapDirectory(settings_for(slapd, urls=(slapd.ldaps_url,)))
    with pytest.raises(DirectoryUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusted_ldaps.lookup_user("alice")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"urls": ()}, "at least one URL"),
        ({"urls": ("http://ldap.example",)}, "not an ldap:// or ldaps:// URL"),
        ({"urls": ("ldap://ldap.example/dc=x",)}, "put base DNs"),
        ({"urls": ("ldap://ldap.example",)}, "bind password in clear text"),
        ({"urls": ("ldaps://ldap.example",), "start_tls": True}, "already ldaps"),
        ({"user_filter": "objectClass=posixAccount"}, "user_filter"),
        ({"group_base": "groups"}, "group_base"),
        ({"bind_password": ""}, "bind_password: required"),
        ({"tls_verify": "maybe"}, "tls_verify"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"receive_timeout": -1}, "receive_timeout"),
    ],
)
def test_settings_are_validated_with_the_key_named(
    slapd: Slapd, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        settings_for(slapd, **overrides)


def test_remote_cleartext_is_allowed_without_a_password(slapd: Slapd) -> None:
    remote = settings_for(slapd, urls=("ldap://ldap.example",), bind_dn=None, bind_password="")
    assert remote.urls == ("ldap://ldap.example",)
    tls = settings_for(slapd, urls=("ldap://ldap.example",), start_tls=True)
    assert tls.start_tls
