"""Incremental decoder for ``Content-Encoding: aws-chunked`` request bodies (pure, no I/O).

The body, after HTTP's own framing is gone, is a series of chunks::

    <hex size>[;chunk-signature=<64 hex>]\\r\\n<data>\\r\\n   ... repeated ...
    0[;chunk-signature=<64 hex>]\\r\\n
    [<trailer name>:<value>\\r\\n ... [x-amz-trailer-signature:<64 hex>\\r\\n]]
    \\r\\n

With a :class:`~kubepie.s3.sigv4.ChunkSignatureChain` each chunk's signature is verified as the
chunk ends (so no byte of a forged chunk is acknowledged as complete) and a signed trailer is
verified against ``x-amz-trailer-signature``. Without one (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``,
or a trusted front that already checked the request) the framing is decoded and any chunk
signatures are ignored. Data is handed back as ``memoryview`` slices of the fed buffers, so no
payload byte is copied here.
"""

from __future__ import annotations

import hashlib
from enum import Enum, auto

from kubepie.s3 import errors
from kubepie.s3.sigv4 import ChunkSignatureChain

#: Longest chunk header or trailer line accepted (a signed header is about 90 bytes).
MAX_LINE = 4096
#: Most trailer lines accepted.
MAX_TRAILERS = 16
_TRAILER_SIGNATURE = "x-amz-trailer-signature"


class _State(Enum):
    HEADER = auto()
    DATA = auto()
    DATA_END = auto()
    TRAILER = auto()
    DONE = auto()


class AwsChunkedDecoder:
    """Feed raw body bytes with :meth:`feed`; call :meth:`finish` when the body has ended."""

    def __init__(self, chain: ChunkSignatureChain | None = None) -> None:
        self._chain = chain
        self._state = _State.HEADER
        self._line = bytearray()
        self._remaining = 0
        self._signature = ""
        self._chunk_hash = hashlib.sha256() if chain is not None else None
        self._trailers: dict[str, str] = {}
        self._trailer_text = bytearray()
        self._trailer_signature = ""
        self.decoded_length = 0

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Decode ``data``; answer the payload slices it contained, in order."""
        view = memoryview(data)
        out: list[memoryview] = []
        pos = 0
        while pos < len(view):
            state = self._state
            if state is _State.DATA:
                take = min(self._remaining, len(view) - pos)
                piece = view[pos : pos + take]
                if self._chunk_hash is not None:
                    self._chunk_hash.update(piece)
                out.append(piece)
                self._remaining -= take
                self.decoded_length += take
                pos += take
                if self._remaining == 0:
                    self._state = _State.DATA_END
            elif state is _State.DONE:
                raise errors.IncompleteBody("data after the end of an aws-chunked body")
            else:
                end = _find_newline(view, pos)
                if end < 0:
                    self._append_line(view[pos:])
                    break
                self._append_line(view[pos:end])
                pos = end + 1
                line = bytes(self._line).rstrip(b"\r")
                self._line.clear()
                self._on_line(line)
        return out

    def finish(self) -> dict[str, str]:
        """The trailers (lower-case names); :class:`IncompleteBody` if the body was cut short."""
        if self._state is _State.TRAILER and not self._line:
            # Some clients end the body right after the last trailer line.
            self._end_trailers()
        if self._state is not _State.DONE:
            raise errors.IncompleteBody("the aws-chunked body ended early")
        return dict(self._trailers)

    def _append_line(self, part: memoryview) -> None:
        if len(self._line) + len(part) > MAX_LINE:
            raise errors.InvalidRequest("aws-chunked framing line too long")
        self._line += part

    def _on_line(self, line: bytes) -> None:
        if self._state is _State.HEADER:
            self._on_header(line)
        elif self._state is _State.DATA_END:
            if line:
                raise errors.IncompleteBody("chunk data longer than its declared size")
            self._end_chunk()
            self._state = _State.HEADER
        elif self._state is _State.TRAILER:
            if line:
                self._on_trailer(line)
            else:
                self._end_trailers()

    def _on_header(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise errors.InvalidRequest(f"bad aws-chunked size {size_text[:20]!r}") from None
        if size < 0:
            raise errors.InvalidRequest("negative aws-chunked size")
        self._signature = ""
        name, _, value = extension.partition(b"=")
        if name.strip() == b"chunk-signature":
            self._signature = value.strip().decode("ascii", "replace")
        elif self._chain is not None:
            raise errors.SignatureDoesNotMatch("a chunk of a signed stream has no signature")
        self._remaining = size
        if size:
            self._state = _State.DATA
        else:
            self._end_chunk()
            self._state = _State.TRAILER

    def _end_chunk(self) -> None:
        if self._chain is None or self._chunk_hash is None:
            return
        self._chain.verify_chunk(self._signature, self._chunk_hash.hexdigest())
        self._chunk_hash = hashlib.sha256()

    def _on_trailer(self, line: bytes) -> None:
        name, sep, value = line.partition(b":")
        if not sep:
            raise errors.InvalidRequest("malformed trailer line")
        key = name.strip().decode("ascii", "replace").lower()
        text = value.strip().decode("ascii", "replace")
        if key == _TRAILER_SIGNATURE:
            self._trailer_signature = text
            return
        if len(self._trailers) >= MAX_TRAILERS:
            raise errors.InvalidRequest("too many trailers")
        self._trailers[key] = text
        self._trailer_text += f"{key}:{text}\n".encode("ascii")

    def _end_trailers(self) -> None:
        if self._chain is not None and self._trailers:
            if not self._trailer_signature:
                raise errors.SignatureDoesNotMatch("the signed trailer has no signature")
            self._chain.verify_trailer(bytes(self._trailer_text), self._trailer_signature)
        self._state = _State.DONE


def _find_newline(view: memoryview, start: int) -> int:
    # memoryview has no find(); look at a bounded bytes copy (framing lines are short).
    window = bytes(view[start : start + MAX_LINE + 2])
    index = window.find(b"\n")
    return -1 if index < 0 else start + index
