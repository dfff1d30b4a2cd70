"""Request bodies: ASGI messages → (aws-chunked decoding) → digests → a blocking sink.

The sink (a file write) and the digests run in a worker thread on batches of ``chunk_size``
bytes while the event loop already receives the next batch, so network, hashing and disk
overlap (``hashlib``, ``zlib.crc32`` and ``os.write`` release the GIL on large buffers).
A client that disconnects raises :class:`ClientDisconnected`; the caller then throws the
temporary file away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.types import Receive

from kubepie.s3 import errors, sigv4
from kubepie.s3.checksums import BodyDigests
from kubepie.s3.chunked import AwsChunkedDecoder

#: Batches that may wait for the worker of one body (each about ``chunk_size`` bytes).
_DEPTH = 4

Buffer = bytes | memoryview
#: Receives the body in order, as batches of about ``chunk_size`` bytes (blocking; runs in a
#: worker thread). The buffers are the received ones, not copies: a batch is one ``writev``.
Sink = Callable[[list[Buffer]], None]


class ClientDisconnected(Exception):
    """The client went away before the request body was complete."""


@dataclass(slots=True)
class BodyPlan:
    """How one request's body is framed and checked."""

    digests: BodyDigests
    aws_chunked: bool
    chain: sigv4.ChunkSignatureChain | None
    expected_length: int | None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise errors.InvalidArgument(f"{name} is not a number") from None
    if number < 0:
        raise errors.InvalidArgument(f"{name} is negative")
    return number


def plan_body(
    headers: Mapping[str, str], verified: sigv4.Verified, *, md5: bool = True
) -> BodyPlan:
    payload = verified.payload_hash
    encodings = [e.strip() for e in headers.get("content-encoding", "").split(",")]
    aws_chunked = payload in sigv4.STREAMING_PAYLOADS or "aws-chunked" in encodings
    content_sha256 = None if aws_chunked or not _is_hex_digest(payload) else payload
    digests = BodyDigests(
        headers,
        content_sha256=content_sha256,
        trailer_checksum=headers.get("x-amz-trailer") if aws_chunked else None,
        md5=md5,
    )
    length_header = "x-amz-decoded-content-length" if aws_chunked else "content-length"
    return BodyPlan(
        digests=digests,
        aws_chunked=aws_chunked,
        chain=verified.chunks if aws_chunked else None,
        expected_length=_int_header(headers, length_header),
    )


def _is_hex_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


async def _messages(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        body: bytes = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def stream_body(receive: Receive, plan: BodyPlan, sink: Sink, chunk_size: int) -> int:
    """Feed the whole decoded body to ``sink``; check length and digests; answer its size."""
    decoder = AwsChunkedDecoder(plan.chain) if plan.aws_chunked else None
    loop = asyncio.get_running_loop()
    digests = plan.digests

    def digest(batch: list[Buffer]) -> None:
        for piece in batch:
            digests.update(piece)

    # Two workers per body, each keeping the batches in order: one hashes, one writes, so a
    # write held up by the kernel's dirty-page throttling does not hold up hashing (and the
    # other way round). Up to ``_DEPTH`` batches may wait, so a slow moment on either side
    # does not stall receiving at once.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-hash")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-write")
    pending: deque[tuple[asyncio.Future[None], asyncio.Future[None]]] = deque()

    def submit(batch: list[Buffer]) -> None:
        pending.append(
            (
                loop.run_in_executor(hasher, digest, batch),
                loop.run_in_executor(writer, sink, batch),
            )
        )

    async def settle() -> None:
        hashed, written = pending.popleft()
        try:
            await hashed
        finally:
            await written

    batch: list[Buffer] = []
    batched = 0
    total = 0
    try:
        async for raw in _messages(receive):
            pieces: Iterable[Buffer] = (raw,) if decoder is None else decoder.feed(raw)
            for piece in pieces:
                batch.append(piece)
                batched += len(piece)
            if batched >= chunk_size:
                while len(pending) >= _DEPTH or (pending and all(f.done() for f in pending[0])):
                    await settle()
                total += batched
                submit(batch)
                batch, batched = [], 0
        trailers = decoder.finish() if decoder is not None else {}
        if batch:
            total += batched
            submit(batch)
        while pending:
            await settle()
    finally:
        # Never leave a write running on a file the caller is about to close and remove
        # (at most _DEPTH batches, a few milliseconds of work).
        for pair in pending:
            for future in pair:
                with contextlib.suppress(Exception):
                    await future
        hasher.shutdown(wait=False)
        writer.shutdown(wait=False)
    if plan.expected_length is not None and total != plan.expected_length:
        raise errors.IncompleteBody(
            f"You did not provide the number of bytes specified ({total} of "
            f"{plan.expected_length})."
        )
    digests.check(trailers)
    return total


async def read_small_body(receive: Receive, plan: BodyPlan, limit: int) -> bytes:
    """The whole (decoded, checked) body of a request that carries a small XML document."""
    collected = bytearray()

    def keep(batch: list[Buffer]) -> None:
        for data in batch:
            if len(collected) + len(data) > limit:
                raise errors.InvalidRequest("the request body is too large")
            collected.extend(data)

    await stream_body(receive, plan, keep, 64 << 10)
    return bytes(collected)
