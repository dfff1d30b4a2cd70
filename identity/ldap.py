"""``LdapDirectory``: POSIX accounts and groups from an LDAP server, through ``ldap3``.

The only module that imports ``ldap3`` (import-linter checks it). Schema it reads:

* users: entries under ``user_base`` matching ``user_filter`` (default ``posixAccount``) with
  ``uid``, ``uidNumber``, ``gidNumber``, ``homeDirectory`` and optional ``loginShell``, ``gecos``;
* groups: entries under ``group_base`` matching ``group_filter`` (default ``posixGroup``) with
  ``cn``, ``gidNumber`` and members as ``memberUid`` usernames (RFC 2307) and/or ``member`` DNs
  (rfc2307bis, ``groupOfNames``); a user's groups are the group whose ``gidNumber`` is the
  user's primary gid plus every group that lists the user either way.

Behaviour:

* Every call opens a connection in a worker thread (StartTLS if asked, simple bind), runs its
  searches (paged, so server size limits do not truncate ``all_users``) and unbinds. URLs are
  tried in order until one accepts the connection and the bind.
* Usernames are matched exactly (``uid`` is case-insensitive in LDAP; ``ALICE`` is not
  ``alice`` here) and escaped as RFC 4515 filter values, so ``*)(uid=*`` finds nothing.
* A ``member`` DN whose first RDN is ``uid=<name>`` directly under ``user_base`` is read as
  ``<name>`` without a round trip (as nslcd does); any other DN under ``user_base`` is read from
  the server. DNs that are not accounts of this directory (outside ``user_base``, or not
  matching ``user_filter``: nested groups, say) are left out of the member list, so a group
  never lists a member that ``lookup_user`` would not find.
* Any ``ldap3`` or socket error becomes :class:`~identity.errors.DirectoryUnavailableError`
  (``raise ... from exc``); messages never contain the bind password. A malformed entry for the
  requested user is :class:`~identity.errors.InvalidEntryError`; malformed entries met while
  listing everything are left out and logged by DN.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPNoSuchObjectResult
from ldap3.utils.conv import escape_filter_chars

from identity.errors import DirectoryUnavailableError, InvalidEntryError
from identity.models import Group, User

log = logging.getLogger(__name__)

T = TypeVar("T")
TlsVerify = Literal["required", "optional", "none"]

_VERIFY_MODES: dict[str, ssl.VerifyMode] = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}
_USER_ATTRS = ["uid", "uidNumber", "gidNumber", "homeDirectory", "loginShell", "gecos"]
_GROUP_ATTRS = ["cn", "gidNumber", "memberUid", "member"]
_MAX_ID = 2**32 - 2
_PAGE = 500


@dataclass(frozen=True, slots=True)
class LdapSettings:
    """How to reach and read the directory. Validated on construction (``ValueError``)."""

    #: ``ldap://host[:port]`` or ``ldaps://host[:port]``, tried in order (failover, not balance).
    urls: tuple[str, ...]
    #: Base DN of the accounts, searched with subtree scope.
    user_base: str
    #: Base DN of the groups, searched with subtree scope.
    group_base: str
    #: DN to bind as; ``None`` binds anonymously.
    bind_dn: str | None = None
    #: Password of ``bind_dn``. Never shown in ``repr`` or in error messages.
    bind_password: str = field(default="", repr=False)
    user_filter: str = "(objectClass=posixAccount)"
    group_filter: str = "(objectClass=posixGroup)"
    #: Upgrade ``ldap://`` connections with StartTLS before binding.
    start_tls: bool = False
    #: PEM file of the CAs that sign the server certificate; ``None`` uses the system store.
    ca_file: str | None = None
    #: Certificate check for ldaps/StartTLS: ``required`` (default: anything else lets an
    #: attacker on the path answer for the directory), ``optional`` or ``none`` (tests only).
    tls_verify: TlsVerify = "required"
    #: Seconds to wait for the TCP connection to each URL; short, because a down server must
    #: fail over or fail closed quickly rather than hold a login.
    connect_timeout: float = 3.0
    #: Whole seconds to wait for any single answer on an open connection (ldap3 sets it as
    #: ``SO_RCVTIMEO`` and takes integers only).
    receive_timeout: int = 10

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("ldap.urls: at least one URL is required")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in {"ldap", "ldaps"} or not parts.hostname:
                raise ValueError(f"ldap.urls: {url!r} is not an ldap:// or ldaps:// URL")
            if parts.path not in {"", "/"} or parts.query:
                raise ValueError(f"ldap.urls: {url!r}: put base DNs in user_base/group_base")
            if self.start_tls and parts.scheme == "ldaps":
                raise ValueError(f"ldap.start_tls: {url!r} is already ldaps://")
            cleartext = parts.scheme == "ldap" and not self.start_tls
            if cleartext and self.bind_password and not _is_loopback(parts.hostname):
                raise ValueError(
                    f"ldap.urls: {url!r} would carry the bind password in clear text; "
                    "use ldaps:// or start_tls"
                )
        for key, value in (("user_filter", self.user_filter), ("group_filter", self.group_filter)):
            if not (value.startswith("(") and value.endswith(")")):
                raise ValueError(f"ldap.{key}: {value!r} is not a parenthesised LDAP filter")
        for key, dn in (("user_base", self.user_base), ("group_base", self.group_base)):
            if "=" not in dn:
                raise ValueError(f"ldap.{key}: {dn!r} is not a DN")
        if self.bind_dn is not None and not self.bind_password:
            raise ValueError("ldap.bind_password: required when bind_dn is set")
        if self.tls_verify not in _VERIFY_MODES:
            raise ValueError(
                f"ldap.tls_verify: {self.tls_verify!r} is not one of required, optional, none"
            )
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ValueError(f"ldap.ca_file: {self.ca_file!r} is not a file")
        for key, seconds in (
            ("connect_timeout", self.connect_timeout),
            ("receive_timeout", self.receive_timeout),
        ):
            if isinstance(seconds, bool) or not seconds > 0:
                raise ValueError(f"ldap.{key}: must be a positive number of seconds")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LdapDirectory:
    """A :class:`~identity.directory.Directory` over LDAP; see the module docstring."""

    def __init__(self, settings: LdapSettings) -> None:
        self._settings = settings
        self._tls = ldap3.Tls(
            validate=_VERIFY_MODES[settings.tls_verify], ca_certs_file=settings.ca_file
        )

    async def lookup_user(self, username: str) -> User | None:
        return await self._call(lambda s: s.user(username))

    async def groups_for(self, user: User) -> tuple[Group, ...]:
        return await self._call(lambda s: s.groups_for(user))

    async def all_users(self) -> tuple[User, ...]:
        return await self._call(lambda s: s.all_users())

    async def all_groups(self) -> tuple[Group, ...]:
        return await self._call(lambda s: s.all_groups())

    async def _call(self, operation: Callable[[_Session], T]) -> T:
        return await asyncio.to_thread(self._run, operation)

    def _run(self, operation: Callable[[_Session], T]) -> T:
        failures: list[str] = []
        last: BaseException | None = None
        for url in self._settings.urls:
            try:
                # A fresh Server per call: ldap3 remembers a refused address as unavailable for
                # a while, which would keep us failing after the directory is back.
                server = ldap3.Server(
                    url,
                    tls=self._tls,
                    get_info=ldap3.NONE,
                    connect_timeout=self._settings.connect_timeout,
                )
                conn = self._open(server)
            except (LDAPException, OSError) as exc:
                failures.append(f"{url}: {self._describe(exc)}")
                last = exc
                continue
            try:
                return operation(_Session(conn, self._settings))
            except (LDAPException, OSError) as exc:
                raise DirectoryUnavailableError(f"LDAP {url}: {self._describe(exc)}") from exc
            finally:
                _close(conn)
        raise DirectoryUnavailableError(
            "no LDAP server reachable: " + "; ".join(failures)
        ) from last

    def _open(self, server: ldap3.Server) -> ldap3.Connection:
        s = self._settings
        conn = ldap3.Connection(
            server,
            user=s.bind_dn,
            password=s.bind_password or None,
            read_only=True,
            raise_exceptions=True,
            receive_timeout=s.receive_timeout,
        )
        try:
            conn.open(read_server_info=False)
            if s.start_tls:
                conn.start_tls(read_server_info=False)
            conn.bind(read_server_info=False)
        except BaseException:
            _close(conn)  # ldap3 leaves the socket open when a step fails
            raise
        return conn

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        password = self._settings.bind_password
        return text.replace(password, "***") if password else text


def _close(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except (LDAPException, OSError):
        log.debug("unbind failed", exc_info=True)
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.close()


class _Session:
    """The searches of one call, over one open connection (runs in the worker thread)."""

    def __init__(self, conn: ldap3.Connection, settings: LdapSettings) -> None:
        self._conn = conn
        self._s = settings
        self._dn_names: dict[str, str | None] = {}
        self._user_suffix = "," + _normal_dn(settings.user_base)

    def user(self, username: str) -> User | None:
        found = self._user_entry(username)
        return None if found is None else _user_from(found[1], found[0], username)

    def groups_for(self, user: User) -> tuple[Group, ...]:
        name = escape_filter_chars(user.username)
        terms = [f"(gidNumber={user.gid})", f"(memberUid={name})"]
        found = self._user_entry(user.username)
        user_dn = None if found is None else _normal_dn(found[0])
        if found is not None:
            terms.append(f"(member={escape_filter_chars(found[0])})")
        query = f"(&{self._s.group_filter}(|{''.join(terms)}))"
        own = {
            group
            for group, member_dns in self._groups(
                self._search(self._s.group_base, query, _GROUP_ATTRS)
            )
            # Checked again here, exactly: the server may match memberUid case-insensitively.
            if group.gid == user.gid or user.username in group.members or user_dn in member_dns
        }
        return tuple(sorted(own, key=lambda g: (g.gid, g.name)))

    def all_users(self) -> tuple[User, ...]:
        users = []
        for dn, attrs in self._search(self._s.user_base, self._s.user_filter, _USER_ATTRS):
            try:
                users.append(_user_from(attrs, dn, None))
            except InvalidEntryError as exc:
                log.warning("skipping LDAP account: %s", exc)
        return tuple(sorted(users, key=lambda u: (u.uid, u.username)))

    def all_groups(self) -> tuple[Group, ...]:
        entries = self._search(self._s.group_base, self._s.group_filter, _GROUP_ATTRS)
        groups = [group for group, _ in self._groups(entries)]
        return tuple(sorted(groups, key=lambda g: (g.gid, g.name)))

    def _user_entry(self, username: str) -> tuple[str, Mapping[str, list[str]]] | None:
        query = f"(&{self._s.user_filter}(uid={escape_filter_chars(username)}))"
        # uid matches case-insensitively on the server; only an exact value names this user.
        matches = [
            (dn, attrs)
            for dn, attrs in self._search(self._s.user_base, query, _USER_ATTRS)
            if username in attrs.get("uid", [])
        ]
        if len(matches) > 1:
            dns = ", ".join(dn for dn, _ in matches)
            raise InvalidEntryError(f"username {username!r} names several LDAP entries: {dns}")
        return matches[0] if matches else None

    def _groups(
        self, entries: Iterable[tuple[str, Mapping[str, list[str]]]]
    ) -> list[tuple[Group, frozenset[str]]]:
        """Each group with its member usernames, and the normalised DNs it lists as members."""
        groups = []
        for dn, attrs in entries:
            try:
                name = _first(attrs, "cn", dn)
                gid = _number(attrs, "gidNumber", dn)
            except InvalidEntryError as exc:
                log.warning("skipping LDAP group: %s", exc)
                continue
            members = set(attrs.get("memberUid", []))
            for member_dn in attrs.get("member", []):
                username = self._username_of(member_dn)
                if username is not None:
                    members.add(username)
            member_dns = frozenset(_normal_dn(dn) for dn in attrs.get("member", []))
            groups.append((Group(name, gid, tuple(sorted(members))), member_dns))
        return groups

    def _username_of(self, dn: str) -> str | None:
        if dn in self._dn_names:
            return self._dn_names[dn]
        normal = _normal_dn(dn)
        username: str | None = None
        if normal.endswith(self._user_suffix):
            rdn = dn.split(",", 1)[0].strip()
            attr, _, value = rdn.partition("=")
            plain = not any(c in value for c in '\\+,="')
            if attr.strip().lower() == "uid" and plain and value.strip():
                username = value.strip()
        if username is None:
            username = self._read_username(dn)
        self._dn_names[dn] = username
        return username

    def _read_username(self, dn: str) -> str | None:
        if not _normal_dn(dn).endswith(self._user_suffix):
            return None
        try:
            self._conn.search(dn, self._s.user_filter, search_scope=ldap3.BASE, attributes=["uid"])
        except LDAPNoSuchObjectResult:
            return None
        for entry in self._conn.response or []:
            if entry.get("type") == "searchResEntry":
                uids = entry["attributes"].get("uid", [])
                return str(uids[0]) if uids else None
        return None

    def _search(
        self, base: str, query: str, attributes: list[str]
    ) -> list[tuple[str, Mapping[str, list[str]]]]:
        entries: Any = self._conn.extend.standard.paged_search(
            base,
            query,
            search_scope=ldap3.SUBTREE,
            attributes=attributes,
            paged_size=_PAGE,
            generator=False,
        )
        out: list[tuple[str, Mapping[str, list[str]]]] = []
        for entry in entries:
            if entry.get("type") == "searchResEntry":
                attrs = {k: [str(v) for v in vs] for k, vs in entry["attributes"].items()}
                out.append((str(entry["dn"]), attrs))
        return out


def _normal_dn(dn: str) -> str:
    return ",".join(part.strip() for part in dn.lower().split(","))


def _first(attrs: Mapping[str, list[str]], name: str, dn: str) -> str:
    values = attrs.get(name, [])
    if not values or not values[0]:
        raise InvalidEntryError(f"{dn}: {name} is missing")
    return values[0]


def _number(attrs: Mapping[str, list[str]], name: str, dn: str) -> int:
    text = _first(attrs, name, dn)
    try:
        value = int(text, 10)
    except ValueError:
        raise InvalidEntryError(f"{dn}: {name} {text!r} is not a number") from None
    if not 0 <= value <= _MAX_ID:
        raise InvalidEntryError(f"{dn}: {name} {value} is out of range")
    return value


def _user_from(attrs: Mapping[str, list[str]], dn: str, username: str | None) -> User:
    return User(
        username=username if username is not None else _first(attrs, "uid", dn),
        uid=_number(attrs, "uidNumber", dn),
        gid=_number(attrs, "gidNumber", dn),
        gecos=(attrs.get("gecos") or [""])[0],
        home=_first(attrs, "homeDirectory", dn),
        shell=(attrs.get("loginShell") or ["/bin/sh"])[0],
    )
