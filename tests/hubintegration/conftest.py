"""Fixtures of the JupyterHub integration tests: the chart's values and Hub database objects."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubintegration.settings import HubSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "charts" / "jupyterhub" / "values.yaml"


@pytest.fixture(scope="session")
def values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return data


@pytest.fixture(scope="session")
def settings(values: dict[str, Any]) -> HubSettings:
    return load_settings(values["custom"])


@pytest.fixture(scope="session")
def crypt_key() -> Iterator[str]:
    """JupyterHub encrypts ``auth_state`` with ``JUPYTERHUB_CRYPT_KEY``."""
    key = base64.b64encode(os.urandom(32)).decode()
    old = os.environ.get("JUPYTERHUB_CRYPT_KEY")
    os.environ["JUPYTERHUB_CRYPT_KEY"] = key
    yield key
    if old is None:
        os.environ.pop("JUPYTERHUB_CRYPT_KEY", None)
    else:
        os.environ["JUPYTERHUB_CRYPT_KEY"] = old
