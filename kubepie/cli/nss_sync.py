"""``kubepie nss-sync``: render passwd and group files from the user directory.

The directory is either a static YAML file (``--static-file``) or LDAP (``--ldap-url`` and the
other ``--ldap-*`` options). The bind password is read only from ``KUBEPIE_LDAP_BIND_PASSWORD``
or from ``--ldap-bind-password-file``, never from the command line (where ``ps`` shows it).

Both files are written atomically: each goes to a temporary file in the output directory, is
flushed to disk, gets mode 0644 and is renamed over the old one, so a reader sees either the
old or the new file, never a partial one. Nothing is written unless both render.

Exit status: 0 written; 2 bad options; 3 directory unavailable (retry later; the old files
stay); 4 a directory entry cannot be rendered safely or the static file is invalid.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kubepie.cli.options import add_option

if TYPE_CHECKING:
    from identity.directory import Directory

NAME = "nss-sync"
HELP = "Write passwd and group files rendered from the user directory."

PASSWORD_ENV = "KUBEPIE_LDAP_BIND_PASSWORD"  # noqa: S105 (a variable name, not a secret)
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INVALID = 4


def configure(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--output", required=True, help="directory to write passwd and group to")
    add_option(parser, "--static-file", help="static YAML directory file")
    add_option(parser, "--ldap-url", action="append", help="LDAP URL; repeat for failover")
    add_option(parser, "--ldap-bind-dn", help="DN to bind as (anonymous if not given)")
    add_option(
        parser,
        "--ldap-bind-password-file",
        help=f"file holding the bind password (else {PASSWORD_ENV} is read)",
    )
    add_option(parser, "--ldap-user-base", help="base DN of the accounts")
    add_option(parser, "--ldap-group-base", help="base DN of the groups")
    add_option(parser, "--ldap-user-filter", default="(objectClass=posixAccount)")
    add_option(parser, "--ldap-group-filter", default="(objectClass=posixGroup)")
    add_option(parser, "--ldap-start-tls", action="store_true", help="upgrade with StartTLS")
    add_option(parser, "--ldap-ca-file", help="PEM file of the CAs of the LDAP server")
    add_option(
        parser,
        "--ldap-tls-verify",
        choices=["required", "optional", "none"],
        default="required",
        help="certificate check",
    )
    add_option(parser, "--ldap-connect-timeout", type=float, default=3.0, help="seconds")
    add_option(parser, "--ldap-receive-timeout", type=int, default=10, help="whole seconds")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from identity.errors import DirectoryUnavailableError, InvalidEntryError

    try:
        directory = _directory(args)
    except _UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except InvalidEntryError as exc:
        return _fail(str(exc), EXIT_INVALID)
    try:
        passwd, group = asyncio.run(_render(directory))
    except DirectoryUnavailableError as exc:
        return _fail(f"directory unavailable, nothing written: {exc}", EXIT_UNAVAILABLE)
    except InvalidEntryError as exc:
        return _fail(f"cannot render, nothing written: {exc}", EXIT_INVALID)
    output = Path(args.output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        write_atomically(output / "passwd", passwd)
        write_atomically(output / "group", group)
    except OSError as exc:
        return _fail(f"cannot write to {output}: {exc.strerror or exc}", 1)
    users, groups = passwd.count("\n"), group.count("\n")
    print(f"kubepie nss-sync: wrote {users} users and {groups} groups to {output}")
    return 0


class _UsageError(Exception):
    pass


def _fail(message: str, status: int) -> int:
    print(f"kubepie nss-sync: {message}", file=sys.stderr)
    return status


def _directory(args: argparse.Namespace) -> Directory:
    from identity.ldap import LdapDirectory, LdapSettings
    from identity.static import StaticDirectory

    if bool(args.static_file) == bool(args.ldap_url):
        raise _UsageError("give exactly one of --static-file and --ldap-url")
    if args.static_file:
        return StaticDirectory.load(args.static_file)
    missing = [
        flag
        for flag, value in (
            ("--ldap-user-base", args.ldap_user_base),
            ("--ldap-group-base", args.ldap_group_base),
        )
        if not value
    ]
    if missing:
        raise _UsageError(f"{', '.join(missing)} required with --ldap-url")
    password = ""
    if args.ldap_bind_password_file:
        try:
            password = Path(args.ldap_bind_password_file).read_text(encoding="utf-8").strip("\n")
        except OSError as exc:
            raise _UsageError(f"--ldap-bind-password-file: {exc.strerror or exc}") from None
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    try:
        settings = LdapSettings(
            urls=tuple(args.ldap_url),
            user_base=args.ldap_user_base,
            group_base=args.ldap_group_base,
            bind_dn=args.ldap_bind_dn or None,
            bind_password=password,
            user_filter=args.ldap_user_filter,
            group_filter=args.ldap_group_filter,
            start_tls=args.ldap_start_tls,
            ca_file=args.ldap_ca_file,
            tls_verify=args.ldap_tls_verify,
            connect_timeout=args.ldap_connect_timeout,
            receive_timeout=args.ldap_receive_timeout,
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    return LdapDirectory(settings)


async def _render(directory: Directory) -> tuple[str, str]:
    from identity.nss import render_group, render_passwd

    users = await directory.all_users()
    groups = await directory.all_groups()
    return render_passwd(users), render_group(groups)


def write_atomically(path: Path, content: str) -> None:
    """Replace ``path`` with ``content`` (mode 0644) so readers never see a partial file."""
    fd, temp = _mkstemp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _mkstemp(path: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
