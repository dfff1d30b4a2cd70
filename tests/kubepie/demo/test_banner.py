"""The generated configuration and the printed banner (pure)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from kubepie.demo.accounts import DEMO_USERS, Population, single_user
from kubepie.demo.banner import PROMPT, BannerInfo, commands, render
from kubepie.demo.config import DemoLayout, Endpoints, min_uid_for, serve_config, serve_environment
from kubepie.settings.loader import settings_from_mapping

ENDPOINTS = Endpoints("127.0.0.1", 8080, 9000, 8090)
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def info(population: Population = DEMO_USERS) -> BannerInfo:
    return BannerInfo(
        endpoints=ENDPOINTS,
        population=population,
        storage="/srv/demo/storage",
        log_file="/srv/demo/serve.log",
        user=population.users[0].username,
        token="eyJ.h-_.s",
        token_hours=8,
        access_key_id="KPABCDEFGHIJKLMNOPQR",
        secret_access_key="-starts-with-a-dash_and_is_40_characters",
        python="/opt/kubepie venv/bin/python",
    )


def test_generated_config_is_valid_for_kubepie_serve(tmp_path: Path) -> None:
    layout = DemoLayout(tmp_path)
    config = serve_config(layout, ENDPOINTS, DEMO_USERS)
    environ = serve_environment("s" * 32, KEY)
    settings = settings_from_mapping(yaml.safe_load(yaml.safe_dump(config)), environ)
    assert settings.oidc.issuer == "http://127.0.0.1:8090"
    assert settings.oidc.accepted_audiences == ("kubepie",)
    assert settings.identity.source == "static"
    assert [(m.name, m.read_only) for m in settings.mounts] == [
        ("home", False),
        ("data", True),
        ("group-{group}", False),
    ]
    assert "secret" not in yaml.safe_dump(config)


def test_single_user_config_has_no_group_mount_and_fits_low_uids(tmp_path: Path) -> None:
    population = single_user("ci", 501, 20)
    config = serve_config(DemoLayout(tmp_path), ENDPOINTS, population)
    assert [m["name"] for m in config["mounts"]] == ["home", "data"]
    assert min_uid_for(population) == 501
    assert min_uid_for(DEMO_USERS) == 1000


def test_banner_lists_logins_urls_and_one_line_commands() -> None:
    text = render(info())
    for user in ("alice", "bob", "carol"):
        assert f"{user:<8} password {user}-demo" in text
    assert "http://127.0.0.1:8080/" in text
    assert "NOT FOR PRODUCTION" in text
    printed = [line[len(PROMPT) :] for line in text.splitlines() if line.startswith(PROMPT)]
    assert printed == commands(info())
    assert printed[0].startswith("TOKEN=")
    for command in printed:
        shlex.split(command)  # each one is a complete shell line
    # A secret starting with '-' is not taken for an option of rclone obscure.
    assert "rclone obscure -- " in printed[4]
    assert shlex.split(printed[-1])[0] == "/opt/kubepie venv/bin/python"


def test_single_user_banner_says_so() -> None:
    text = render(info(single_user("ci", 1000, 1000)))
    assert "SINGLE-USER demo: not running as root, so only ci (you)" in text
