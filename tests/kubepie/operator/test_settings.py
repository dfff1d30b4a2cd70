"""The operator's settings: the example loads, and bad files are refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubepie.operator.errors import ConfigurationError
from kubepie.operator.settings import load_operator_settings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "operator.yaml"


def test_the_example_loads() -> None:
    settings = load_operator_settings(EXAMPLE)
    assert settings.namespace == "kubepie"
    assert settings.min_uid == 1000
    assert settings.idle_timeout == 900.0
    assert settings.webhook.operator_users == ("system:serviceaccount:kubepie:kubepie-operator",)


def test_a_claims_only_identity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text("identity: {source: claims}\n")
    with pytest.raises(ConfigurationError, match=r"identity\.source must be 'ldap' or 'static'"):
        load_operator_settings(path)


def test_a_bad_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text("identity: {source: static, static_file: /x}\nwebhook: {port: 0}\n")
    with pytest.raises(ConfigurationError, match=r"webhook\.port"):
        load_operator_settings(path)
