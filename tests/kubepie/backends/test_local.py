"""The local backend with real ``kubepie fileserver`` processes, started as root.

Each test builds its own backend (its own helper process) over a shared storage area and
checks the processes it leaves behind through ``/proc``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from identity.models import Identity
from identity.storage import MountSpec
from kubepie.backends.errors import (
    BackendClosed,
    CapacityExhausted,
    StartFailed,
    StartTimeout,
)
from kubepie.backends.local import LocalBackend
from kubepie.backends.metrics import PrometheusBackendMetrics
from kubepie.settings.models import BackendSettings
from tests.kubepie.backends.helpers import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    children,
    eventually,
    get,
    gone,
    home_mounts,
    proc_file,
    proc_status,
    socket_exists,
    storage_area,
)

pytestmark = pytest.mark.root

Factory = Callable[..., LocalBackend]


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with storage_area() as path:
        yield path


@pytest.fixture
async def make_backend(area: Path) -> AsyncIterator[Factory]:
    """Build backends over ``area`` (state in a fresh directory); all closed afterwards."""
    made: list[LocalBackend] = []

    def make(
        mounts: tuple[MountSpec, ...] | None = None,
        grace: float = 1.0,
        s3: bool = True,
        **settings: object,
    ) -> LocalBackend:
        backend = LocalBackend(
            BackendSettings.model_validate({"idle_timeout": 60, **settings}),
            home_mounts(area) if mounts is None else mounts,
            area / f"state-{len(list(area.glob('state-*')))}",
            grace=grace,
            s3=s3,
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


def pid_of(backend: LocalBackend, identity: Identity) -> int:
    (info,) = [s for s in backend.servers() if s.uid == identity.uid]
    assert info.pid is not None
    return info.pid


async def test_server_runs_as_the_user_and_serves_with_its_secret(make_backend: Factory) -> None:
    backend = make_backend()
    upstream = await backend.ensure(ALICE)
    pid = pid_of(backend, ALICE)
    status = proc_status(pid)
    assert status["Uid"].split() == [str(ALICE.uid)] * 4
    assert status["Gid"].split() == [str(ALICE.gid)] * 4
    assert sorted(int(g) for g in status["Groups"].split()) == list(ALICE.gids)
    assert status["CapEff"] == "0000000000000000"
    assert status["CapPrm"] == "0000000000000000"

    response = get(upstream, "/dav/home/hello.txt")
    assert response.status_code == 200
    assert response.text == "hello alice\n"
    assert get(upstream, "/dav/home/hello.txt", secret="x" * 43).status_code == 401

    # The secret is nowhere an unprivileged observer could read it.
    for name in ("cmdline", "environ"):
        assert upstream.secret.encode() not in proc_file(pid, name)
    assert upstream.secret not in repr(upstream)


async def test_s3_listener_answers_behind_the_same_secret(make_backend: Factory) -> None:
    backend = make_backend()
    upstream = await backend.ensure(ALICE)
    assert upstream.s3_address is not None
    response = get(upstream, "/home/hello.txt", s3=True)
    assert response.status_code == 200
    assert response.text == "hello alice\n"
    assert get(upstream, "/home/hello.txt", secret="x" * 43, s3=True).status_code == 403
    sock = os.stat(upstream.s3_address.removeprefix("unix:"))
    assert (sock.st_uid, stat.S_IMODE(sock.st_mode)) == (0, 0o600)
    without = await make_backend(s3=False).ensure(ALICE)
    assert without.s3_address is None


async def test_router_secrets_in_the_environment_do_not_reach_servers(
    make_backend: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEPIE_CREDENTIALS_ENCRYPTION_KEY", "router-only-key-6f2d")
    backend = make_backend()
    await backend.ensure(DAVE)
    assert backend.helper_pid is not None
    for pid in (backend.helper_pid, pid_of(backend, DAVE)):
        environ = proc_file(pid, "environ")
        assert b"router-only-key-6f2d" not in environ
        assert b"PATH=" in environ


async def test_socket_is_reachable_only_by_the_router(make_backend: Factory) -> None:
    backend = make_backend()
    upstream = await backend.ensure(BOB)
    sock = Path(upstream.address.removeprefix("unix:"))
    info = os.stat(sock)
    assert stat.S_ISSOCK(info.st_mode)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    run_dir = os.stat(sock.parent)
    assert (run_dir.st_uid, stat.S_IMODE(run_dir.st_mode)) == (0, 0o700)
    # bob's own server process cannot reach the path it serves on.
    state = os.stat(sock.parent.parent / "fileserver" / str(BOB.uid))
    assert (state.st_uid, state.st_gid, stat.S_IMODE(state.st_mode)) == (BOB.uid, BOB.gid, 0o700)


async def test_fifty_concurrent_first_requests_start_one_server(make_backend: Factory) -> None:
    backend = make_backend()
    upstreams = await asyncio.gather(*(backend.ensure(CAROL) for _ in range(50)))
    assert len(set(upstreams)) == 1
    assert backend.running() == 1
    assert backend.helper_pid is not None
    assert children(backend.helper_pid) == {pid_of(backend, CAROL)}
    assert get(upstreams[0], "/dav/home/hello.txt").text == "hello carol\n"


async def test_killed_server_is_restarted_by_the_next_ensure(make_backend: Factory) -> None:
    backend = make_backend()
    first = await backend.ensure(ALICE)
    old_pid = pid_of(backend, ALICE)
    os.kill(old_pid, signal.SIGKILL)
    await eventually(lambda: backend.running() == 0)
    second = await backend.ensure(ALICE)
    new_pid = pid_of(backend, ALICE)
    assert new_pid != old_pid
    assert second.secret != first.secret
    assert not socket_exists(first.address)
    assert get(second, "/dav/home/hello.txt").status_code == 200
    assert get(second, "/dav/home/hello.txt", secret=first.secret).status_code == 401


async def test_unreachable_server_is_replaced_after_report_failure(
    make_backend: Factory,
) -> None:
    backend = make_backend(grace=0.3)
    first = await backend.ensure(BOB)
    old_pid = pid_of(backend, BOB)
    await backend.report_failure(BOB)  # it answers: kept
    assert pid_of(backend, BOB) == old_pid
    os.kill(old_pid, signal.SIGSTOP)  # hung: accepts nothing
    await backend.report_failure(BOB)
    assert backend.running() == 0
    second = await backend.ensure(BOB)
    assert pid_of(backend, BOB) != old_pid
    assert get(second, "/dav/home/hello.txt").status_code == 200
    await eventually(lambda: gone(old_pid))  # SIGKILL after the grace ends even a stopped one
    assert first != second


async def test_idle_server_is_stopped(make_backend: Factory) -> None:
    backend = make_backend(idle_timeout=0.4)
    for who in (ALICE, BOB):
        await backend.ensure(who)
        await backend.touch(who)  # the request is done
    alice_pid, bob_pid = pid_of(backend, ALICE), pid_of(backend, BOB)
    for _ in range(6):  # bob stays busy, alice does not
        await asyncio.sleep(0.1)
        await backend.touch(BOB)
    await eventually(lambda: gone(alice_pid), within=5)
    assert [s.uid for s in backend.servers()] == [BOB.uid]
    await eventually(lambda: gone(bob_pid), within=5)
    assert backend.running() == 0


async def test_a_server_moving_data_is_not_idle_without_touch(make_backend: Factory) -> None:
    backend = make_backend(idle_timeout=0.5)
    upstream = await backend.ensure(CAROL)
    await backend.touch(CAROL)
    pid = pid_of(backend, CAROL)
    for _ in range(15):  # 1.5 s of traffic that bypasses the backend (no ensure, no touch)
        assert get(upstream, "/dav/home/hello.txt").status_code == 200
        await asyncio.sleep(0.1)
    assert not gone(pid)
    await eventually(lambda: gone(pid), within=5)


async def test_max_servers_refuses_when_none_is_idle_long_enough(make_backend: Factory) -> None:
    backend = make_backend(max_servers=2)
    await backend.ensure(ALICE)  # no touch: both requests are still in flight
    await backend.ensure(BOB)
    with pytest.raises(CapacityExhausted) as refused:
        await backend.ensure(CAROL)
    assert refused.value.status == 503
    assert backend.running() == 2


async def test_max_servers_evicts_the_least_recently_used(area: Path) -> None:
    backend = LocalBackend(
        BackendSettings(idle_timeout=60, max_servers=2),
        home_mounts(area),
        area / "state-evict",
        evict_idle=0.0,
        grace=1.0,
    )
    try:
        await backend.ensure(ALICE)
        await backend.ensure(BOB)
        alice_pid = pid_of(backend, ALICE)
        await backend.touch(BOB)
        await backend.touch(ALICE)  # both done; bob is now the least recently used
        bob_pid = pid_of(backend, BOB)
        upstream = await backend.ensure(CAROL)
        assert sorted(s.uid for s in backend.servers()) == [ALICE.uid, CAROL.uid]
        await eventually(lambda: gone(bob_pid))
        assert not gone(alice_pid)
        assert get(upstream, "/dav/home/hello.txt").text == "hello carol\n"
    finally:
        await backend.aclose()


async def test_a_full_table_makes_room_at_once_from_an_idle_server_never_a_busy_one(
    make_backend: Factory,
) -> None:
    backend = make_backend(max_servers=2)  # the default evict_idle: a short bound
    await backend.ensure(ALICE)  # alice's request stays in flight (a long transfer)
    await backend.ensure(BOB)
    await backend.touch(BOB)  # bob's request is done, just now
    alice_pid, bob_pid = pid_of(backend, ALICE), pid_of(backend, BOB)
    upstream = await backend.ensure(CAROL)  # waits for bob's short bound, not refused
    assert sorted(s.uid for s in backend.servers()) == [ALICE.uid, CAROL.uid]
    await eventually(lambda: gone(bob_pid))
    assert not gone(alice_pid)
    assert get(upstream, "/dav/home/hello.txt").text == "hello carol\n"
    with pytest.raises(CapacityExhausted):  # alice and carol both have a request in flight
        await backend.ensure(BOB)


async def test_a_request_in_flight_keeps_its_server_past_the_idle_timeout(
    make_backend: Factory,
) -> None:
    backend = make_backend(idle_timeout=0.3)
    await backend.ensure(BOB)  # a long transfer the backend cannot watch (no touch yet)
    pid = pid_of(backend, BOB)
    await asyncio.sleep(1.2)
    assert not gone(pid)
    await backend.touch(BOB)  # done: now it may go
    await eventually(lambda: gone(pid), within=5)


async def test_aclose_stops_everything(make_backend: Factory) -> None:
    backend = make_backend()
    await asyncio.gather(*(backend.ensure(who) for who in (ALICE, BOB, CAROL)))
    helper = backend.helper_pid
    assert helper is not None
    pids = children(helper)
    assert len(pids) == 3
    await backend.aclose()
    assert backend.running() == 0
    assert gone(helper)
    assert all(gone(pid) for pid in pids)
    assert helper not in children(os.getpid())
    with pytest.raises(BackendClosed):
        await backend.ensure(ALICE)


async def test_servers_die_with_the_helper_and_come_back(make_backend: Factory) -> None:
    backend = make_backend()
    await backend.ensure(ALICE)
    helper, pid = backend.helper_pid, pid_of(backend, ALICE)
    assert helper is not None
    os.kill(helper, signal.SIGKILL)  # as if the router were killed: no orderly shutdown
    await eventually(lambda: gone(pid))
    await eventually(lambda: backend.running() == 0)
    upstream = await backend.ensure(ALICE)
    assert backend.helper_pid not in (None, helper)
    assert get(upstream, "/dav/home/hello.txt").status_code == 200


async def test_changed_groups_replace_the_server(make_backend: Factory) -> None:
    backend = make_backend()
    await backend.ensure(BOB)
    old_pid = pid_of(backend, BOB)
    regrouped = Identity(BOB.issuer, BOB.sub, "bob", BOB.uid, BOB.gid, (20002,), ("beamline-x",))
    await backend.ensure(regrouped)
    new_pid = pid_of(backend, BOB)
    assert new_pid != old_pid
    assert sorted(int(g) for g in proc_status(new_pid)["Groups"].split()) == [10002, 20002]
    await eventually(lambda: gone(old_pid))


async def test_missing_home_directory_is_left_out_clearly(
    area: Path, make_backend: Factory
) -> None:
    data = area / "data"
    data.mkdir(mode=0o755, exist_ok=True)
    (data / "readme.txt").write_text("shared data\n")
    backend = make_backend(mounts=(*home_mounts(area), MountSpec("data", str(data), True)))
    upstream = await backend.ensure(DAVE)  # dave has no home directory
    assert get(upstream, "/dav/data/readme.txt").text == "shared data\n"
    missing = get(upstream, "/dav/home/")
    assert missing.status_code == 404


async def test_start_timeout_is_a_503_and_leaves_no_process(make_backend: Factory) -> None:
    backend = make_backend(start_timeout=0.001)
    with pytest.raises(StartTimeout) as failed:
        await backend.ensure(ALICE)
    assert failed.value.status == 503
    assert backend.running() == 0
    helper = backend.helper_pid
    assert helper is not None
    await eventually(lambda: children(helper) == set())


async def test_a_server_that_cannot_start_fails_with_503(area: Path, make_backend: Factory) -> None:
    twice = (MountSpec("home", str(area / "home")), MountSpec("home", str(area / "home")))
    backend = make_backend(mounts=twice)
    with pytest.raises(StartFailed, match="configured twice"):
        await backend.ensure(ALICE)
    assert backend.running() == 0


async def test_a_server_exiting_before_it_is_ready_fails_with_its_status(
    make_backend: Factory,
) -> None:
    # More supplementary groups than the kernel allows (NGROUPS_MAX 65536): the drop fails.
    crowded = Identity(ALICE.issuer, "crowded", "crowded", 10005, 10005, tuple(range(30000, 96000)))
    backend = make_backend()
    with pytest.raises(StartFailed, match="exit status 70") as failed:
        await backend.ensure(crowded)
    assert failed.value.status == 503
    assert backend.running() == 0
    assert await backend.ensure(ALICE)  # the backend itself is fine


async def test_uid_zero_is_refused(make_backend: Factory) -> None:
    backend = make_backend()
    root = Identity(ALICE.issuer, "root", "root", 0, 0)
    with pytest.raises(Exception, match="uid 0") as refused:
        await backend.ensure(root)
    assert getattr(refused.value, "status", None) == 403
    assert backend.running() == 0


async def test_metrics_record_spawns_and_running_servers(area: Path) -> None:
    registry = CollectorRegistry()
    backend = LocalBackend(
        BackendSettings(idle_timeout=60),
        home_mounts(area),
        area / "state-metrics",
        metrics=PrometheusBackendMetrics(registry),
        grace=1.0,
    )
    try:
        await backend.ensure(ALICE)
        await backend.ensure(BOB)
        assert registry.get_sample_value("kubepie_backend_spawn_seconds_count") == 2
        assert registry.get_sample_value("kubepie_backend_servers_running") == 2
    finally:
        await backend.aclose()
    assert registry.get_sample_value("kubepie_backend_servers_running") == 0
