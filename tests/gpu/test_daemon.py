"""The node daemon API over its real unix socket: answers scoped to the calling process's pod."""

from __future__ import annotations

import os

import pytest

from gpu.cgroups import ProcCgroupReader
from gpu.client import query
from gpu.daemon import Daemon
from gpu.errors import CallerUnknownError, DaemonError, ForbiddenError
from tests.gpu.conftest import BIG_PID, SMALL_PID, SYSTEM_PID, Node
from tests.gpu.fakes import H100

MIB = 2**20
TOKEN = "s3cret-admin-credential"


async def test_a_container_sees_its_own_pod_only(node: Node) -> None:
    node.place(os.getpid(), "big")
    view = await query(node.socket, {"op": "status"})
    assert view["caller"] == {"namespace": "team-a", "pod": "big", "container": "main"}
    assert [(c["pod"], c["shares"]) for c in view["containers"]] == [("big", 1)]
    container = view["containers"][0]
    assert container["guarantee_bytes"] == 20480 * MIB
    assert container["limit_bytes"] == 40960 * MIB  # the annotation's 2 shares
    assert container["used_bytes"] == 1000 * MIB
    assert container["device_shares"] == {H100: 1}
    assert [(p["pid"], p["name"], p["used_bytes"]) for p in view["processes"]] == [
        (BIG_PID, "big-worker", 1000 * MIB)
    ]
    assert [d["uuid"] for d in view["devices"]] == [H100]
    assert view["node"] is False


async def test_asking_about_another_pod_is_refused(node: Node) -> None:
    node.place(os.getpid(), "small")
    with pytest.raises(ForbiddenError) as refused:
        await query(node.socket, {"op": "status", "namespace": "team-a", "pod": "big"})
    assert refused.value.status == 403
    with pytest.raises(ForbiddenError):
        await query(node.socket, {"op": "status", "node": True})
    with pytest.raises(ForbiddenError):
        await query(node.socket, {"op": "status", "node": True, "token": "guess"})
    # Naming its own pod is fine, and claims inside the request change nothing.
    own = await query(node.socket, {"op": "status", "namespace": "team-b", "pod": "small"})
    assert [c["pod"] for c in own["containers"]] == ["small"]
    claimed = await query(node.socket, {"op": "status", "pid": BIG_PID, "pod_uid": "a"})
    assert [c["pod"] for c in claimed["containers"]] == ["small"]


async def test_outside_any_pod_needs_the_admin_credential(node: Node) -> None:
    node.place(os.getpid(), None)
    with pytest.raises(CallerUnknownError) as unknown:
        await query(node.socket, {"op": "status"})
    assert unknown.value.status == 401
    view = await query(node.socket, {"op": "status", "node": True, "token": TOKEN})
    assert view["node"] is True
    assert {c["pod"] for c in view["containers"]} == {"big", "small"}
    pids = {p["pid"]: p["pod"] for p in view["processes"]}
    assert pids == {BIG_PID: "big", SMALL_PID: "small", SYSTEM_PID: ""}
    assert len(view["devices"]) == 3  # the H100 and both MIG instances
    one = await query(
        node.socket, {"op": "status", "namespace": "team-a", "pod": "big", "token": TOKEN}
    )
    assert [c["pod"] for c in one["containers"]] == ["big"]
    with pytest.raises(DaemonError):
        await query(node.socket, {"op": "status", "token": TOKEN})  # no scope named


async def test_without_a_configured_credential_there_is_no_node_view(node: Node) -> None:
    daemon = Daemon(node.monitor, ProcCgroupReader(node.proc_root), admin_token=None)
    path = node.socket.with_name("open.sock")
    server = await daemon.serve(path)
    try:
        node.place(os.getpid(), None)
        for token in (TOKEN, ""):
            with pytest.raises(CallerUnknownError):
                await query(path, {"op": "status", "node": True, "token": token})
        node.place(os.getpid(), "big")
        with pytest.raises(ForbiddenError):
            await query(path, {"op": "status", "node": True, "token": TOKEN})
    finally:
        server.close()
        await server.wait_closed()


async def test_bad_requests(node: Node) -> None:
    node.place(os.getpid(), "big")
    with pytest.raises(DaemonError) as unknown_op:
        await query(node.socket, {"op": "kill", "pid": SMALL_PID})
    assert unknown_op.value.status == 500
    with pytest.raises(DaemonError) as half:
        await query(node.socket, {"op": "status", "namespace": "team-a"})
    assert "both" in str(half.value)
