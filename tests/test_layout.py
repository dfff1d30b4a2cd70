"""The project's own contracts: CLI wiring and environment-variable options."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from kubepie.cli import COMMANDS, build_parser
from kubepie.cli.options import add_option, env_name


def test_every_subcommand_is_listed_in_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kubepie.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for module in COMMANDS:
        assert module.NAME in out


def test_env_name_is_derived_from_the_flag() -> None:
    assert env_name("--s3-listen") == "KUBEPIE_S3_LISTEN"


def test_option_reads_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEPIE_IDLE_TIMEOUT", "42")
    parser = argparse.ArgumentParser()
    add_option(parser, "--idle-timeout", type=int, required=True)
    assert parser.parse_args([]).idle_timeout == 42
    assert parser.parse_args(["--idle-timeout", "7"]).idle_timeout == 7


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEPIE_IDLE_TIMEOUT", "soon")
    parser = argparse.ArgumentParser()
    with pytest.raises(SystemExit, match="KUBEPIE_IDLE_TIMEOUT"):
        add_option(parser, "--idle-timeout", type=int)


def test_unknown_subcommand_exits_with_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["no-such-command"])
    assert exc.value.code == 2
