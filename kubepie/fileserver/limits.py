"""The file server's own memory ceiling: ``RLIMIT_DATA``, set once before it serves.

A per-user server runs untrusted requests; whatever escapes the per-request bounds (a huge
``Depth: 1`` listing, a client holding many connections) must not take the node's memory.
``RLIMIT_DATA`` counts the process's private writable mappings (heap, anonymous ``mmap``,
thread stacks: Linux 4.7 and later), so an allocation past it fails with ``MemoryError`` in
the request that made it, which is answered 500, and the server goes on. ``RLIMIT_AS`` would
also count file mappings and address space reserved but never touched, and breaks Python's
allocator long before the memory is in use.

What the server needs (measured with the 1 MiB blocks, uvicorn and the WebDAV adapter's 16
worker threads): 25 MiB of data idle; about 210 MiB once 24 clients have run PUT, GET and
PROPFIND at once and a 20,000-entry ``Depth: 1`` listing was answered (most of it reserved
thread stacks: the resident size stayed under 70 MiB). 512 MiB is a sensible floor, 1024
MiB leaves room for listings of 100,000 entries.

Both the soft and the hard limit are set, so the process (which may run as the user) cannot
raise it again; a lower limit inherited from the parent is kept.

A ``MemoryError`` inside a request's worker thread is answered 500 and the server goes on
(a 60,000-entry ``Depth: 1`` listing, 53 MB of XML, under a 400 MiB limit did so; it needs
about 500 MiB to succeed). One raised in the event loop itself leaves the loop unable to make
progress: :func:`exit_on_memory_error` then ends the process with :data:`EXIT_OUT_OF_MEMORY`,
so its backend starts a fresh one at the next request. That is not complete: with the same
listing under 200-320 MiB the error sometimes strikes where no handler runs (while the
interpreter formats another error) and the server stops answering until it is stopped. Size
the limit for the largest directory users list, not for the idle server.
"""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

from kubepie.fileserver.settings import SettingsError

#: Exit status of a server that ran out of its memory limit in the event loop (EX_TEMPFAIL).
EXIT_OUT_OF_MEMORY = 75

#: Below this the interpreter, uvicorn and one request's buffers do not fit (MiB).
MIN_MEMORY_LIMIT_MB = 64


def apply_memory_limit(limit_mb: int | None) -> int | None:
    """Set ``RLIMIT_DATA`` to ``limit_mb`` MiB (None: leave it); returns the limit in bytes
    now in force, or None when unlimited."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if limit_mb is None:
        return None if soft == resource.RLIM_INFINITY else soft
    if limit_mb < MIN_MEMORY_LIMIT_MB:
        raise SettingsError(f"memory_limit_mb: {limit_mb} is below {MIN_MEMORY_LIMIT_MB} MiB")
    wanted = limit_mb << 20
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (wanted, wanted))
    except (ValueError, OSError) as exc:
        raise SettingsError(f"memory_limit_mb: cannot set RLIMIT_DATA: {exc}") from exc
    return wanted


def exit_on_memory_error(loop: asyncio.AbstractEventLoop) -> None:
    """Make an unhandled ``MemoryError`` in ``loop`` end the process at once (see above)."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), MemoryError):
            # No logging call: it may need the memory that is missing.
            os.write(2, b"kubepie fileserver: out of memory (memory_limit_mb), exiting\n")
            os._exit(EXIT_OUT_OF_MEMORY)
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)
