"""The WebDAV (litmus, five suites) and S3 (boto3) suites through the real router with
``backend.kind: kubernetes``: every request reaches a Pod run by the process kubelet as the
user. The S3 suite is the router's own (``tests/kubepie/router/test_s3_suite.py``), imported
unchanged and run on this module's ``router``."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.kubepie.router import test_s3_suite
from tests.kubepie.router.conftest import (
    Router,
    browser_login,
    create_credential,
    dave_credential,  # noqa: F401 (fixture of the imported suite)
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def router(kube_router: Router) -> Router:
    """The suite's router: the one with the kubernetes backend."""
    return kube_router


s3_server = test_s3_suite.s3_server
s3 = test_s3_suite.s3
tree = test_s3_suite.tree
for _module, _names in test_s3_suite._SUITE.items():
    for _name in _names:
        globals()[_name] = getattr(_module, _name)


async def test_litmus_all_suites_through_a_pod(kube_router: Router) -> None:
    web = await browser_login(kube_router, "bob")
    try:
        cred = await create_credential(web, kube_router, description="litmus")
    finally:
        await web.aclose()
    env = {**os.environ, "TESTS": "basic copymove props locks http"}
    proc = await asyncio.create_subprocess_exec(
        "litmus",
        "--",
        f"{kube_router.url}/dav/home/",
        cred["access_key_id"],
        cred["secret_access_key"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(kube_router.area / "logs"),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    for suite in ("basic", "copymove", "props", "locks", "http"):
        assert f"-> running `{suite}'" in text
    assert "FAIL" not in text, text
