"""The ``kubepie serve`` configuration: the example file, errors naming keys, env overrides."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from identity.storage import MountSpec
from kubepie.credentials.cipher import SecretCipher, generate_key_text
from kubepie.credentials.models import Owner
from kubepie.credentials.sqlite import SqliteCredentialStore
from kubepie.settings.errors import ConfigError, ConfigFileError
from kubepie.settings.loader import env_keys, load_config, settings_from_mapping
from kubepie.settings.models import KubePieSettings

EXAMPLE = Path(__file__).parents[2] / "examples" / "kubepie.yaml"
KEY = generate_key_text()
SECRETS = {
    "KUBEPIE_OIDC_CLIENT_SECRET": "client-secret-value",
    "KUBEPIE_IDENTITY_LDAP_BIND_PASSWORD": "bind-password-value",
    "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": KEY,
}


def _minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "public_url": "https://files.example.org/",
        "oidc": {"issuer": "https://idp.example.org", "client_id": "kubepie"},
        "mounts": [{"name": "home", "path": "/home/{username}"}],
    }
    data.update(changes)
    return data


def _problems(data: dict[str, Any], environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as failed:
        settings_from_mapping(data, SECRETS if environ is None else environ)
    return failed.value.problems


def test_example_loads_with_secrets_from_the_environment() -> None:
    settings = load_config(EXAMPLE, SECRETS)
    assert str(settings.listen) == "127.0.0.1:8080"
    assert settings.s3_listen is not None
    assert settings.s3_listen.port == 9000
    assert settings.public_url == "https://files.example.org"
    assert settings.oidc.client_secret.get_secret_value() == "client-secret-value"
    assert settings.identity.ldap is not None
    assert settings.identity.ldap.url == ("ldaps://ldap1.example.org", "ldaps://ldap2.example.org")
    assert settings.identity.ldap.bind_password is not None
    assert settings.identity.ldap.bind_password.get_secret_value() == "bind-password-value"
    assert settings.identity.cache_ttl == 300
    assert settings.backend.idle_timeout == 900
    assert settings.credentials.last_used_interval == 60
    assert settings.mount_specs == (
        MountSpec("home", "/home/{username}"),
        MountSpec("data", "/data", read_only=True),
        MountSpec("group-{group}", "/group/{group}"),
    )
    assert settings.credentials_database == Path("/var/lib/kubepie/credentials.sqlite3")
    for secret in SECRETS.values():
        assert secret not in repr(settings)
        assert secret not in str(settings.model_dump())


def test_example_without_secrets_names_each_missing_key_and_its_variable() -> None:
    with pytest.raises(ConfigError) as failed:
        load_config(EXAMPLE, {})
    assert failed.value.problems == (
        "oidc.client_secret: field required (in the file or in KUBEPIE_OIDC_CLIENT_SECRET)",
        "identity.ldap.bind_password: required when bind_dn is set "
        "(or set KUBEPIE_IDENTITY_LDAP_BIND_PASSWORD)",
        "credentials.encryption_keys: field required (in the file or in "
        "KUBEPIE_CREDENTIALS_ENCRYPTION_KEYS or KUBEPIE_CREDENTIALS_ENCRYPTION_KEY)",
    )
    assert str(failed.value).startswith(f"invalid configuration in {EXAMPLE}:\n  oidc.")


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, info in model.model_fields.items():
        yield prefix + name, info
        for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
            inner = getattr(candidate, "__args__", (candidate,))[0]
            for kind in (candidate, inner):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    yield from _fields(kind, f"{prefix}{name}.")


def test_every_key_is_documented_in_the_model_and_the_example() -> None:
    example = EXAMPLE.read_text()
    keys = dict(_fields(KubePieSettings))
    assert "identity.ldap.bind_password" in keys
    assert "mounts.read_only" in keys
    for key, info in keys.items():
        assert info.description, f"{key} has no docstring"
        leaf = key.rsplit(".", 1)[-1]
        if leaf not in {"host", "port"}:
            assert re.search(rf"^\s*(# )?-? ?{leaf}:", example, re.M), f"{key} not in the example"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"oidc": {"issuer": "https://idp", "client_id": "k", "client_secert": "x"}},
            "oidc.client_secert: unknown key; did you mean 'client_secret'?",
        ),
        ({"listen": "8080"}, "listen: must be host:port"),
        ({"public_url": "http://files.example.org"}, "public_url: must use https"),
        ({"public_url": "files.example.org"}, "public_url: must be an http(s) URL"),
        (
            {"oidc": {"issuer": "https://i", "client_id": "k", "scopes": "email"}},
            "oidc.scopes: must include 'openid'",
        ),
        ({"identity": {"source": "ldap"}}, "identity.ldap: required when identity.source"),
        ({"identity": {"source": "static"}}, "identity.static_file: required when"),
        ({"identity": {"min_uid": 0}}, "identity.min_uid: input should be greater than"),
        ({"identity": {"source": "nis"}}, "identity.source: input should be 'claims'"),
        ({"mounts": [{"name": "h", "path": "/h"}, {"name": "x", "path": "rel"}]}, "mounts.1:"),
        (
            {"mounts": [{"name": "h", "path": "/a"}, {"name": "h", "path": "/b"}]},
            "mounts: mount name 'h' is used twice",
        ),
        ({"mounts": []}, "mounts: tuple should have at least 1 item"),
        ({"backend": {"idle_timeout": "soon"}}, "backend.idle_timeout: a duration is"),
        (
            {"backend": {"kind": "docker"}},
            "backend.kind: input should be 'local' or 'kubernetes'",
        ),
        ({"state_dir": ["x"]}, "state_dir: input is not a valid path"),
        ({"accounting": {"log_files": "/x"}}, "accounting.log_files: unknown key"),
    ],
)
def test_errors_name_the_bad_key(change: dict[str, Any], problem: str) -> None:
    problems = _problems(_minimal(**change))
    assert any(p.startswith(problem) for p in problems), problems


def test_every_bad_key_is_listed_at_once() -> None:
    problems = _problems(
        _minimal(listen="x", backend={"max_servers": 0}, identity={"uid_claim": 5}),
        environ={"KUBEPIE_OIDC_CLIENT_SECRET": "s"},
    )
    assert [p.split(":", 1)[0] for p in problems] == [
        "listen",
        "identity.uid_claim",
        "backend.max_servers",
        "credentials",
    ]


def test_ldap_consistency_is_checked() -> None:
    ldap = {"url": "ldaps://ldap", "user_base": "ou=p", "group_base": "ou=g", "start_tls": True}
    problems = _problems(_minimal(identity={"source": "ldap", "ldap": ldap}))
    assert problems == (
        "identity.ldap.start_tls: cannot be used with 'ldaps://ldap' (already TLS)",
    )


def test_ldap_settings_become_the_directory_settings() -> None:
    settings = load_config(EXAMPLE, SECRETS)
    assert settings.identity.ldap is not None
    directory = settings.identity.ldap.directory_settings()
    assert directory.urls == ("ldaps://ldap1.example.org", "ldaps://ldap2.example.org")
    assert directory.bind_password == "bind-password-value"
    assert directory.bind_dn == "cn=kubepie,ou=services,dc=example,dc=org"
    assert directory.tls_verify == "required"
    assert "bind-password-value" not in repr(directory)


@pytest.mark.parametrize(
    ("ldap", "problem"),
    [
        (
            {"url": "ldap://ldap.example.org", "bind_dn": "cn=k"},
            "identity.ldap.url: 'ldap://ldap.example.org' would carry the bind password in clear",
        ),
        ({"user_filter": "objectClass=posixAccount"}, "identity.ldap.user_filter: "),
        ({"user_base": "people"}, "identity.ldap.user_base: 'people' is not a DN"),
        ({"url": "http://ldap"}, "identity.ldap.url: 'http://ldap' is not an ldap://"),
    ],
)
def test_the_directory_checks_run_at_load(ldap: dict[str, str], problem: str) -> None:
    base = {"url": "ldaps://ldap", "user_base": "ou=p,dc=x", "group_base": "ou=g,dc=x"}
    problems = _problems(_minimal(identity={"source": "ldap", "ldap": {**base, **ldap}}))
    assert len(problems) == 1
    assert problems[0].startswith(problem), problems


def test_environment_overrides_the_file() -> None:
    environ = {
        **SECRETS,
        "KUBEPIE_LISTEN": "0.0.0.0:8081",
        "KUBEPIE_S3_LISTEN": "[::1]:9001",
        "KUBEPIE_BACKEND_IDLE_TIMEOUT": "2h",
        "KUBEPIE_OIDC_AUDIENCES": "kubepie, https://files.example.org",
        "KUBEPIE_STATE_DIR": "/srv/kubepie",
    }
    settings = settings_from_mapping(_minimal(listen="127.0.0.1:1"), environ)
    assert (settings.listen.host, settings.listen.port) == ("0.0.0.0", 8081)
    assert str(settings.s3_listen) == "[::1]:9001"
    assert settings.backend.idle_timeout == 7200
    assert settings.oidc.accepted_audiences == ("kubepie", "https://files.example.org")
    assert settings.credentials_database == Path("/srv/kubepie/credentials.sqlite3")


def test_urls_are_checked_and_only_the_public_url_loses_its_slash() -> None:
    settings = settings_from_mapping(
        _minimal(
            public_url="http://127.0.0.1:8080/",
            oidc={"issuer": "http://localhost:3000/", "client_id": "k"},
        ),
        SECRETS,
    )
    assert settings.public_url == "http://127.0.0.1:8080"
    assert settings.oidc.issuer == "http://localhost:3000/"


def test_variables_of_an_absent_optional_section_are_ignored() -> None:
    settings = settings_from_mapping(_minimal(), SECRETS)
    assert settings.identity.ldap is None
    ldap = {"url": "ldap://127.0.0.1:389", "user_base": "ou=p", "group_base": "ou=g"}
    with_ldap = settings_from_mapping(
        _minimal(identity={"source": "ldap", "ldap": {**ldap, "bind_dn": "cn=k"}}), SECRETS
    )
    assert with_ldap.identity.ldap is not None
    assert with_ldap.identity.ldap.bind_password is not None
    shared = {**SECRETS, "KUBEPIE_LDAP_BIND_PASSWORD": "nss-sync-password"}
    del shared["KUBEPIE_IDENTITY_LDAP_BIND_PASSWORD"]
    same_as_nss_sync = settings_from_mapping(
        _minimal(identity={"source": "ldap", "ldap": {**ldap, "bind_dn": "cn=k"}}), shared
    )
    assert same_as_nss_sync.identity.ldap is not None
    assert same_as_nss_sync.identity.ldap.bind_password is not None
    assert same_as_nss_sync.identity.ldap.bind_password.get_secret_value() == "nss-sync-password"


def test_a_bad_environment_value_names_key_and_variable() -> None:
    problems = _problems(_minimal(), {**SECRETS, "KUBEPIE_BACKEND_MAX_SERVERS": "many"})
    assert problems == (
        "backend.max_servers: input should be a valid integer, unable to parse string as an "
        "integer (from KUBEPIE_BACKEND_MAX_SERVERS)",
    )


def test_keys_come_from_one_variable_or_a_list() -> None:
    older = generate_key_text()
    listed = {**SECRETS, "KUBEPIE_CREDENTIALS_ENCRYPTION_KEYS": f"{KEY},{older}"}
    del listed["KUBEPIE_CREDENTIALS_ENCRYPTION_KEY"]
    settings = settings_from_mapping(_minimal(), listed)
    assert len(settings.credentials.keys()) == 2
    with pytest.raises(ConfigError, match="set only one of"):
        settings_from_mapping(_minimal(), {**listed, "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": KEY})


def test_bad_secrets_are_never_echoed() -> None:
    bad_key = "c2hvcnQtYnV0LXNlY3JldA=="
    with pytest.raises(ConfigError) as failed:
        settings_from_mapping(
            _minimal(), {**SECRETS, "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": bad_key}
        )
    assert failed.value.problems[0].startswith(
        "credentials.encryption_keys.0: an encryption key must be 32 random bytes"
    )
    assert bad_key not in str(failed.value)
    assert failed.value.__cause__ is None
    assert failed.value.__context__ is None


def test_settings_are_frozen() -> None:
    settings = settings_from_mapping(_minimal(), SECRETS)
    with pytest.raises(ValidationError, match="frozen"):
        settings.backend.max_servers = 5


def test_variable_names_follow_the_key_paths() -> None:
    table = env_keys()
    assert table["KUBEPIE_OIDC_CLIENT_SECRET"].path == ("oidc", "client_secret")
    assert table["KUBEPIE_IDENTITY_LDAP_BIND_PASSWORD"].path == (
        "identity",
        "ldap",
        "bind_password",
    )
    assert table["KUBEPIE_CREDENTIALS_ENCRYPTION_KEYS"].many
    assert not any(name.startswith("KUBEPIE_MOUNTS") for name in table)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("listen: [unclosed\n", "line 2, column 1"),
        ("- a\n- b\n", "the top level must be a mapping"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_unreadable_files_are_reported(tmp_path: Path, content: str | bytes, problem: str) -> None:
    path = tmp_path / "kubepie.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigFileError, match=problem):
        load_config(path, SECRETS)
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", SECRETS)


async def test_credential_settings_open_a_working_store(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        _minimal(state_dir=str(tmp_path), credentials={"max_lifetime": "1d"}), SECRETS
    )
    cipher = SecretCipher(settings.credentials.keys())
    async with await SqliteCredentialStore.open(
        settings.credentials_database, cipher, settings.credentials.policy()
    ) as store:
        new = await store.create(Owner("https://idp.example.org", "s", "alice"))
        assert new.credential.expires_at == pytest.approx(new.credential.created_at + 86400)
