"""``kubepie demo`` command-line handling (without starting anything)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubepie.cli import build_parser, main
from kubepie.cli.demo import default_dir


def test_options_also_read_kubepie_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEPIE_DEMO_ISSUER_PORT", "18090")
    monkeypatch.setenv("KUBEPIE_DEMO_DIR", "/srv/demo")
    args = build_parser().parse_args(["demo", "--port", "0"])
    assert (args.port, args.issuer_port, args.s3_port) == (0, 18090, None)
    assert args.dir == Path("/srv/demo")


def test_a_port_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--port", "70000"]) == 2
    assert "--port 70000 is not a port" in capsys.readouterr().err


@pytest.mark.root
def test_default_dir_is_reachable_by_the_demo_users() -> None:
    # As root the demo users' servers must enter it: never under root's 0700 home.
    assert os.geteuid() == 0
    assert default_dir() == Path("/var/tmp/kubepie-demo")


def test_kubernetes_service_variables_do_not_reach_the_demo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In a namespace with a Service named "kubepie", Kubernetes sets KUBEPIE_PORT=tcp://...
    monkeypatch.setenv("KUBEPIE_PORT", "tcp://10.0.0.1:8080")
    args = build_parser().parse_args(["demo"])
    assert args.port is None
