"""The real router for the web UI tests: ``kubepie serve`` (which serves the UI) with the real
oidc-provider as issuer and the local backend, started by the router tests' own harness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.oidc import OidcProvider
from tests.kubepie.router.conftest import (
    CLAIMS_IDENTITY,
    Router,
    router_area,  # noqa: F401 (a fixture, used by web_router)
    start_router,
)


@pytest.fixture(scope="session")
def web_router(oidc_provider: OidcProvider, router_area: Path) -> Iterator[Router]:  # noqa: F811
    handle = start_router(oidc_provider, router_area, name="web", identity=CLAIMS_IDENTITY)
    try:
        yield handle
    finally:
        handle.stop()
