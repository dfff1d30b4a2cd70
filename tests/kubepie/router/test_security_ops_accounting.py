"""The accounting file names users and their paths: private from its creation on."""

from __future__ import annotations

import grp
import logging
import os
import stat
from pathlib import Path

import pytest

from kubepie.router.accounting import AccountingLog, RequestRecord
from kubepie.router.errors import AccountingFileError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_accounting_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "transfers.jsonl"
    old_umask = os.umask(0o022)
    try:
        log = AccountingLog.open(path)
    finally:
        os.umask(old_umask)
    log.write(RequestRecord("GET", "/dav/home/x"))
    log.close()
    assert _mode(path) == 0o600
    assert '"path":"/dav/home/x"' in path.read_text()


def test_an_existing_wider_file_is_narrowed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "transfers.jsonl"
    path.write_text('{"old": 1}\n')
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="kubepie.router"):
        AccountingLog.open(path).close()
    assert _mode(path) == 0o600
    assert "had mode 0644; narrowed to 0600" in caplog.text
    assert path.read_text() == '{"old": 1}\n'  # appended to, never truncated


def test_a_reader_group_gets_0640(tmp_path: Path) -> None:
    group = grp.getgrgid(4)  # adm: the group Debian's log readers are in
    path = tmp_path / "transfers.jsonl"
    AccountingLog.open(path, group=group.gr_name).close()
    assert (_mode(path), path.stat().st_gid) == (0o640, group.gr_gid)
    with pytest.raises(AccountingFileError, match="there is no group 'no-such-group'"):
        AccountingLog.open(tmp_path / "other.jsonl", group="no-such-group")


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "transfers.jsonl").symlink_to(target)
    with pytest.raises(AccountingFileError, match="cannot open the accounting file"):
        AccountingLog.open(tmp_path / "transfers.jsonl")
