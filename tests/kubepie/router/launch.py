"""``python -m tests.kubepie.router.launch CONFIG AREA``: ``kubepie serve``'s router with the
test backend of :mod:`tests.kubepie.router.backend` (real file-server processes with S3)."""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from kubepie.router.server import serve_forever
from kubepie.settings.loader import load_config
from kubepie.settings.models import KubePieSettings
from tests.kubepie.router.backend import FileServerBackend


def main(argv: list[str]) -> int:
    settings = load_config(argv[0])
    area = Path(argv[1])

    def backend(settings: KubePieSettings, registry: CollectorRegistry) -> FileServerBackend:
        return FileServerBackend(area, settings.mount_specs)

    return serve_forever(settings, backend, log_level="warning")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
