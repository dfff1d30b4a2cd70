"""Session-wide test wiring: real-server fixtures and log tails on failure."""

from __future__ import annotations

import atexit
import os
import subprocess
from collections.abc import Generator
from pathlib import Path

import pytest

from tests.support import running_processes

pytest_plugins = ["tests.fixtures.slapd", "tests.fixtures.oidc"]


@atexit.register
def _reap_everything() -> None:
    for proc in running_processes():
        proc.stop(timeout=2)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for proc in running_processes():
            report.sections.append((f"log of {proc.name} (pid {proc.pid})", proc.log_tail()))
    return report


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail fast, with the reason, when other users cannot read the checkout.

    Several tests run processes as other uids (file servers after their privilege drop, a
    non-root standalone server); under a private directory they would fail in obscure ways.
    """
    if os.geteuid() != 0:
        return
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r", __file__],
        check=False,
    )
    if probe.returncode != 0:
        raise pytest.UsageError(
            f"{Path(__file__).parent.parent} is not readable by other users (is it under a 0700 "
            "directory such as /root?). Tests run processes as other uids: clone the project "
            "somewhere world-readable, e.g. /var/tmp or /srv (.ci/run does this itself)."
        )
