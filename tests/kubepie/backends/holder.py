"""Hold a local backend with two servers until killed: for the router-death test.

``python -m tests.kubepie.backends.holder STATE_DIR HOME_TEMPLATE`` starts servers for alice
and bob, prints ``{"helper": PID, "servers": [PID, ...]}`` and sleeps; ``test_router_death``
kills it with SIGKILL and checks that nothing it started survives.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from identity.storage import MountSpec
from kubepie.backends.local import LocalBackend
from kubepie.settings.models import BackendSettings
from tests.kubepie.backends.helpers import ALICE, BOB


async def _hold(state_dir: Path, home: str) -> None:
    backend = LocalBackend(BackendSettings(), (MountSpec("home", home),), state_dir, grace=1.0)
    await backend.ensure(ALICE)
    await backend.ensure(BOB)
    servers = [info.pid for info in backend.servers()]
    print(json.dumps({"helper": backend.helper_pid, "servers": servers}), flush=True)
    await asyncio.Event().wait()


def main() -> int:
    asyncio.run(_hold(Path(sys.argv[1]), sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
