"""Pure parts: addresses, mounts, the parent's JSON, Basic and secret checks, path checks."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from identity.models import Identity
from identity.storage import MountSpec, resolve_mounts
from kubepie.fileserver.auth import basic_ok, secret_ok
from kubepie.fileserver.dav_app import check_request_paths, if_modified_since_inclusive
from kubepie.fileserver.errors import PathRefused
from kubepie.fileserver.launch import read_backend_settings, standalone_settings
from kubepie.fileserver.settings import (
    BasicCredentials,
    FileServerSettings,
    ServerSecret,
    SettingsError,
    TcpAddress,
    UnixAddress,
    backend_document,
    backend_settings,
    parse_address,
    parse_roots,
)

GOOD = {
    "identity": {"username": "alice", "uid": 10001, "gid": 10001, "gids": [20002, 20001]},
    "mounts": [{"name": "home", "path": "/home/alice"}, {"name": "data", "path": "/data"}],
    "secret": "s" * 32,
}


def test_addresses() -> None:
    assert parse_address("127.0.0.1:8080") == TcpAddress("127.0.0.1", 8080)
    assert parse_address("[::1]:9000") == TcpAddress("::1", 9000)
    assert parse_address("unix:/run/k.sock") == UnixAddress(Path("/run/k.sock"))
    for bad in ("8080", "unix:rel.sock", "host:70000", "a b:1"):
        with pytest.raises(SettingsError):
            parse_address(bad)


def test_roots() -> None:
    mounts = parse_roots(["home=/srv/home", "data=/srv/data:ro"])
    assert [(m.name, m.path, m.read_only) for m in mounts] == [
        ("home", "/srv/home", False),
        ("data", "/srv/data", True),
    ]
    for bad in (["noequals"], ["x=relative"], ["..=/srv"], ["a=/x", "a=/y"], []):
        with pytest.raises(SettingsError):
            parse_roots(bad)


def test_backend_settings_from_the_parents_document() -> None:
    settings = backend_settings(GOOD, listen=TcpAddress("127.0.0.1", 1), s3_listen=None)
    assert settings.run_as is not None
    assert settings.run_as.gids == (10001, 20001, 20002)
    assert settings.username == "alice"
    assert [m.name for m in settings.mounts] == ["home", "data"]
    assert isinstance(settings.auth, ServerSecret)
    assert "s" * 32 not in repr(settings)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"identity": {"uid": 10001}}, "identity.gid"),
        ({"identity": {"uid": "x", "gid": 1}}, "identity.uid"),
        ({"identity": {"uid": 0, "gid": 0}}, "identity"),
        ({"identity": {"uid": 5, "gid": 5, "gids": ["a"]}}, "identity.gids"),
        ({"mounts": [{"name": "x"}]}, "mounts[0].path"),
        ({"mounts": [{"name": "x", "path": "/a", "read_only": "yes"}]}, "mounts[0].read_only"),
        ({"mounts": [{"name": "../x", "path": "/a"}]}, "mounts"),
        ({"secret": "short"}, "secret"),
    ],
)
def test_backend_settings_errors_name_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError, match=key.replace("[", r"\[").replace("]", r"\]")):
        backend_settings({**GOOD, **change}, listen=TcpAddress("127.0.0.1", 1), s3_listen=None)


def test_backend_document_round_trips() -> None:
    alice = Identity("https://idp", "sub-a", "alice", 10001, 10001, (20001, 20002))
    specs = (MountSpec("home", "/home/{username}"), MountSpec("g", "/group/{group}", True))
    mounts = resolve_mounts(specs, Identity("i", "s", "alice", 10001, 10001, (), ("physics",)))
    doc = backend_document(alice, mounts, "x" * 32, state_dir="/var/lib/k/alice")
    settings = backend_settings(
        json.loads(json.dumps(doc)), listen=UnixAddress(Path("/run/a.sock")), s3_listen=None
    )
    assert settings.run_as is not None
    assert (settings.run_as.uid, settings.run_as.gid) == (10001, 10001)
    assert settings.run_as.gids == (10001, 20001, 20002)
    assert settings.mounts == mounts
    assert settings.state_dir == Path("/var/lib/k/alice")
    assert settings.auth == ServerSecret("x" * 32)


def test_secret_from_the_environment_is_removed_from_it() -> None:
    doc = {k: v for k, v in GOOD.items() if k != "secret"}
    environ = {"KUBEPIE_SERVER_SECRET": "e" * 20, "OTHER": "x"}
    settings = read_backend_settings(
        io.StringIO(json.dumps(doc)),
        listen="unix:/tmp/x.sock",
        s3_listen=None,
        state_dir="/tmp/state",
        environ=environ,
    )
    assert environ == {"OTHER": "x"}
    assert settings.auth == ServerSecret("e" * 20)
    assert settings.state_dir == Path("/tmp/state")


def _standalone(environ: dict[str, str], euid: int) -> FileServerSettings:
    return standalone_settings(
        roots=["h=/srv"],
        listen="127.0.0.1:1",
        s3_listen=None,
        state_dir=None,
        environ=environ,
        euid=euid,
    )


def test_standalone_needs_non_root_and_credentials() -> None:
    env = {"KUBEPIE_ACCESS_KEY": "ak", "KUBEPIE_SECRET_KEY": "sk", "HOME": "/home/u"}
    with pytest.raises(SettingsError, match="root"):
        _standalone(dict(env), 0)
    with pytest.raises(SettingsError, match="KUBEPIE_SECRET_KEY"):
        _standalone({"KUBEPIE_ACCESS_KEY": "ak"}, 1000)
    settings = _standalone(env, 1000)
    assert "KUBEPIE_SECRET_KEY" not in env
    assert settings.auth == BasicCredentials("ak", "sk")
    assert settings.run_as is None
    assert settings.state_dir == Path("/home/u/.local/state/kubepie/fileserver")
    assert "sk" not in repr(settings.auth)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_and_secret_checks() -> None:
    creds = BasicCredentials("ak", "sk")
    assert basic_ok(_basic("ak", "sk"), creds)
    assert not basic_ok(_basic("ak", "sk2"), creds)
    assert not basic_ok(_basic("ak2", "sk"), creds)
    assert not basic_ok("Basic !!!", creds)
    assert not basic_ok("Bearer x", creds)
    assert not basic_ok(None, creds)
    assert not basic_ok("Basic " + base64.b64encode(b"aksk").decode(), creds)
    assert secret_ok("s" * 20, ServerSecret("s" * 20))
    assert not secret_ok("s" * 19, ServerSecret("s" * 20))
    assert not secret_ok(None, ServerSecret("s" * 20))


def test_request_path_checks() -> None:
    check_request_paths(b"/dav/home/a%20b/c.txt", "http://h/dav/home/d.txt")
    for raw in (b"/dav/home/../x", b"/dav/home/%2e%2e/x", b"/dav/a%2Fb", b"/dav/a%00"):
        with pytest.raises(PathRefused):
            check_request_paths(raw, None)
    for dest in ("http://h/dav/home/../../x", "/other/x", "/dav/a%2Fb"):
        with pytest.raises(PathRefused):
            check_request_paths(b"/dav/home/x", dest)


def test_if_modified_since_becomes_inclusive() -> None:
    moved = if_modified_since_inclusive("Wed, 25 Nov 2026 23:28:07 GMT")
    assert moved == "Wed, 25 Nov 2026 23:28:08 GMT"
    assert if_modified_since_inclusive("not a date") is None
