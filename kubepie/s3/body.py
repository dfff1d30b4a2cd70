"""Request bodies: ASGI messages → (aws-chunked decoding) → digests → a blocking sink.

The sink (a file write) and the digests run in worker threads on batches of ``chunk_size``
bytes while the event loop already receives the next batch, so network, hashing and disk
overlap: the file server's :class:`~kubepie.fileserver.uploads.BlockWriter`, shared with
WebDAV uploads.
A client that disconnects raises :class:`ClientDisconnected`; the caller then throws the
temporary file away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from starlette.types import Receive

from kubepie.fileserver.uploads import BlockWriter, Buffer, Sink
from kubepie.s3 import errors, sigv4
from kubepie.s3.checksums import BodyDigests
from kubepie.s3.chunked import AwsChunkedDecoder


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
    async with BlockWriter(sink, (plan.digests,), block_size=chunk_size) as writer:
        async for raw in _messages(receive):
            if decoder is None:
                await writer.feed(raw)
            else:
                for piece in decoder.feed(raw):
                    await writer.feed(piece)
        trailers = decoder.finish() if decoder is not None else {}
        total = await writer.finish()
    if plan.expected_length is not None and total != plan.expected_length:
        raise errors.IncompleteBody(
            f"You did not provide the number of bytes specified ({total} of "
            f"{plan.expected_length})."
        )
    plan.digests.check(trailers)
    return total


async def read_small_body(receive: Receive, plan: BodyPlan, limit: int) -> bytes:
    """The whole (decoded, checked) body of a request that carries a small XML document."""
    collected = bytearray()

    def keep(batch: Sequence[Buffer]) -> None:
        for data in batch:
            if len(collected) + len(data) > limit:
                raise errors.InvalidRequest("the request body is too large")
            collected.extend(data)

    await stream_body(receive, plan, keep, 64 << 10)
    return bytes(collected)
