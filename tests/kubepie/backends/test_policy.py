"""Pure decisions of the local backend: admission, eviction, idle expiry, documents, probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.models import Identity
from identity.storage import MountSpec, ResolvedMount
from kubepie.backends import policy, readiness
from kubepie.backends.errors import BackendError, IdentityRefused
from kubepie.fileserver.settings import TcpAddress, backend_settings
from tests.kubepie.backends.helpers import ALICE, BOB

ROOT = policy.ProcessMode(privileged=True, uid=0)
AS_BOB = policy.ProcessMode(privileged=False, uid=BOB.uid)
SPECS = (MountSpec("home", "/home/{username}"), MountSpec("group", "/group/{group}", True))


def test_process_mode_follows_the_effective_uid() -> None:
    assert policy.process_mode(0, 1000) == policy.ProcessMode(True, 1000)
    assert policy.process_mode(1000, 1000) == policy.ProcessMode(False, 1000)
    assert "without root (uid 1000)" in policy.process_mode(1000, 1000).describe()
    assert "runs with that user's uid" in ROOT.describe()


def test_a_root_backend_serves_anyone_with_their_mounts() -> None:
    spec = policy.server_spec(ALICE, SPECS, ROOT)
    assert (spec.username, spec.uid, spec.gid, spec.gids) == ("alice", 10001, 10001, ALICE.gids)
    assert spec.mounts == (
        ResolvedMount("home", "/home/alice", False),
        ResolvedMount("group-beamline-x", "/group/beamline-x", True),
        ResolvedMount("group-physics", "/group/physics", True),
    )


def test_an_unprivileged_backend_serves_only_its_own_uid() -> None:
    assert policy.server_spec(BOB, SPECS, AS_BOB).uid == BOB.uid
    with pytest.raises(IdentityRefused, match="uid 10001 is refused") as refused:
        policy.server_spec(ALICE, SPECS, AS_BOB)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    ("uid", "gid", "gids"),
    [(0, 10001, ()), (10001, 0, ()), (10001, 10001, (0,)), (-1, 10001, ())],
)
def test_root_ids_and_negative_ids_are_refused(uid: int, gid: int, gids: tuple[int, ...]) -> None:
    identity = Identity("iss", "sub", "x", uid, gid, gids)
    with pytest.raises(IdentityRefused):
        policy.server_spec(identity, SPECS, ROOT)


def test_the_document_is_what_the_file_server_accepts() -> None:
    spec = policy.server_spec(BOB, SPECS, ROOT)
    doc = policy.fileserver_document(spec, "s" * 43, Path("/state/bob"))
    settings = backend_settings(doc, listen=TcpAddress("127.0.0.1", 1), s3_listen=None)
    assert settings.run_as is not None
    assert (settings.run_as.uid, settings.run_as.gid, settings.run_as.gids) == (
        10002,
        10002,
        (10002, 20001),
    )
    assert settings.mounts == spec.mounts
    assert settings.username == "bob"
    assert settings.state_dir == Path("/state/bob")
    assert "state_dir" not in policy.fileserver_document(spec, "s" * 43, None)


def test_eviction_picks_the_least_recently_used_server_without_a_request_in_flight() -> None:
    candidates = [
        policy.Candidate(1, last_used=10.0, ready=True),
        policy.Candidate(2, last_used=5.0, ready=True),
        policy.Candidate(3, last_used=1.0, ready=False),  # still starting: never evicted
        policy.Candidate(4, last_used=0.5, ready=True, busy=True),  # a request in flight
    ]
    assert policy.eviction(candidates, now=20.0, min_idle=5.0) == (2, 0.0)
    # Idle, but only just: the newcomer waits the rest of min_idle instead of being refused.
    assert policy.eviction(candidates, now=20.0, min_idle=16.0) == (2, 1.0)
    busy = [candidates[2], candidates[3]]
    assert policy.eviction(busy, now=20.0, min_idle=0.0) is None
    assert policy.eviction([], now=20.0, min_idle=0.0) is None


def test_idle_expiry() -> None:
    assert policy.idle_expired(last_used=0.0, now=900.0, idle_timeout=900.0)
    assert not policy.idle_expired(last_used=0.5, now=900.0, idle_timeout=900.0)


def test_socket_paths_must_fit_sun_path() -> None:
    short = Path("/var/lib/kubepie/run/u10001-1.sock")
    assert policy.check_socket_path(short) == short
    with pytest.raises(ValueError, match="shorter state_dir"):
        policy.check_socket_path(Path("/" + "x" * 120))


def test_probe_request_and_status_parsing() -> None:
    request = readiness.probe_request("the-secret")
    assert request.startswith(b"GET / HTTP/1.1\r\n")
    assert b"\r\nX-KubePie-Server-Secret: the-secret\r\n" in request
    assert request.endswith(b"\r\n\r\n")
    assert readiness.status_of(b"HTTP/1.1 307 Temporary Redirect\r\n") == 307
    assert readiness.status_of(b"garbage") is None
    assert readiness.status_of(b"SSH-2.0 x\r\n") is None
    assert readiness.answered_ready(307)
    assert not readiness.answered_ready(401)  # wrong secret: not our server
    assert not readiness.answered_ready(None)


def test_every_backend_error_has_a_client_status() -> None:
    from kubepie.backends import errors

    for name in dir(errors):
        kind = getattr(errors, name)
        if isinstance(kind, type) and issubclass(kind, BackendError) and kind is not BackendError:
            assert kind.status in (403, 503), name


def test_the_helper_environment_is_an_allow_list() -> None:
    environ = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "KUBEPIE_OIDC_CLIENT_SECRET": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "HOME": "/root",
    }
    assert policy.helper_environment(environ) == {"PATH": "/usr/bin", "LC_ALL": "C.UTF-8"}
