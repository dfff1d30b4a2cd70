"""Run a local backend as the (non-root) user this process runs as, and report as JSON.

``python -m tests.kubepie.backends.unprivileged STATE_DIR HOME_TEMPLATE`` asks for a server
for dave (the invoking user, uid 10004) and one for alice, and prints what happened: the log
lines, dave's server's ids and answer, and alice's refusal. Started by ``test_unprivileged``
through ``setpriv``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from identity.storage import MountSpec
from kubepie.backends.errors import BackendError
from kubepie.backends.local import LocalBackend
from kubepie.settings.models import BackendSettings
from tests.kubepie.backends.helpers import ALICE, DAVE, get, proc_status


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _main(state_dir: Path, home: str) -> dict[str, Any]:
    collect = _Collect()
    logger = logging.getLogger("kubepie.backends")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    report: dict[str, Any] = {}
    backend = LocalBackend(BackendSettings(), (MountSpec("home", home),), state_dir, grace=1.0)
    try:
        upstream = await backend.ensure(DAVE)
        (info,) = backend.servers()
        assert info.pid is not None
        status = proc_status(info.pid)
        response = get(upstream, "/dav/home/hello.txt")
        report["own"] = {
            "status": response.status_code,
            "text": response.text,
            "uid": status["Uid"],
        }
        try:
            await backend.ensure(ALICE)
        except BackendError as exc:
            report["other"] = {"status": exc.status, "message": str(exc)}
        report["running"] = backend.running()
    finally:
        await backend.aclose()
    report["log"] = collect.lines
    return report


def main() -> int:
    print(json.dumps(asyncio.run(_main(Path(sys.argv[1]), sys.argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
