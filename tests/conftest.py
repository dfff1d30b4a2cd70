"""Session-wide test wiring: real-server fixtures and log tails on failure."""

from __future__ import annotations

import atexit
from collections.abc import Generator

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
