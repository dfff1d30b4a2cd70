"""The file server's C heap settings (:func:`kubepie.fileserver.server.tune_allocator`): a
large block freed after a busy moment goes back to the system instead of staying resident.
Each case runs in a fresh interpreter, since the settings are process-wide."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
from kubepie.fileserver.server import tune_allocator

if sys.argv[1] == "tuned":
    tune_allocator()

def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

busy = bytearray(16 << 20)  # like a large answer: glibc then raises its mmap threshold
del busy
before = rss_kib()
block = bytearray(8 << 20)  # like the next multi-megabyte listing
del block
print(rss_kib() - before)
"""


def _kept_kib(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def test_tuned_heap_gives_a_freed_large_block_back() -> None:
    assert _kept_kib("tuned") < 2048


def test_default_heap_would_keep_it_so_the_check_above_means_something() -> None:
    assert _kept_kib("default") > 6 * 1024
