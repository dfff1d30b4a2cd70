"""A request's headers as the file server will get them: the one view every decision reads.

The router decides (who is asking, which paths a request touches, whether it only creates)
and then forwards; if the two looked at different headers, a client could make the router
decide on a header the file server never sees. So :func:`prepare` computes the forwarded
header list *first*, and the listeners take every decision from that same
:class:`RequestHeaders`:

* hop-by-hop headers (RFC 9110 §7.6.1) and every header the ``Connection`` header names are
  dropped; ``Connection`` may only name hop-by-hop headers and connection options
  (:data:`CONNECTION_OPTIONS`). Naming anything else (``If-None-Match``, ``Destination``,
  ``x-amz-copy-source``, ...) is refused with 400: such a header means something to the file
  server, and a request that asks for it to vanish on the way is not one we can judge;
* a header the router or the file server reads as one value (:data:`SINGLE`) may appear only
  once: two ``Overwrite`` or ``x-amz-copy-source`` headers would let the router read one and a
  WSGI or S3 server, which joins repeated headers, another;
* ``Authorization`` and ``Cookie`` are read by the router (to authenticate) and never
  forwarded, nor is any client-sent ``X-KubePie-*`` header (only the router sets those).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubepie.router.errors import BadRequest

Headers = list[tuple[bytes, bytes]]

#: Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus framing
#: (the forwarder writes its own ``Content-Length`` or ``Transfer-Encoding``).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    }
)
#: What ``Connection`` may name: connection options and hop-by-hop headers that mean nothing
#: to the file server. Framing headers (``Content-Length``, ``Transfer-Encoding``) and every
#: end-to-end header are refused there.
CONNECTION_OPTIONS = frozenset(
    {
        b"close",
        b"keep-alive",
        b"upgrade",
        b"te",
        b"trailer",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"http2-settings",
    }
)
#: The per-server secret the router adds (the file server trusts nothing else).
SECRET_HEADER = b"x-kubepie-server-secret"
#: Read by the router to authenticate; never forwarded.
PRIVATE = frozenset({b"authorization", b"cookie"})
#: Only the router sets these for the file server.
PRIVATE_PREFIX = b"x-kubepie-"
#: Headers read as a single value by the router or the file server: a repeated one is refused.
SINGLE = frozenset(
    {
        b"host",
        b"authorization",
        b"content-length",
        b"destination",
        b"overwrite",
        b"depth",
        b"source",
        b"if-none-match",
        b"if-match",
        b"content-md5",
        b"x-amz-copy-source",
        b"x-amz-copy-source-range",
        b"x-amz-content-sha256",
        b"x-amz-decoded-content-length",
        b"x-amz-metadata-directive",
    }
)


@dataclass(frozen=True, slots=True)
class RequestHeaders:
    """The forwarded headers of one request (lower-case names) and its framing."""

    #: End-to-end headers exactly as the file server gets them (before the router's own).
    forwarded: tuple[tuple[bytes, bytes], ...]
    #: Body length, or ``None`` for a chunked body.
    length: int | None
    chunked: bool
    authorization: str | None = None
    cookie: str | None = None

    def get(self, name: str) -> str | None:
        """The value of a forwarded header (its first, for a list-valued header)."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.forwarded:
            if key == wanted:
                return value.decode("latin-1")
        return None

    def view(self) -> dict[str, str]:
        """Name → first value: the forwarded headers plus the ones the router authenticates
        with. What WebDAV decisions read."""
        out: dict[str, str] = {}
        for name, value in self.forwarded:
            out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        if self.authorization is not None:
            out["authorization"] = self.authorization
        if self.cookie is not None:
            out["cookie"] = self.cookie
        return out

    def joined(self) -> dict[str, str]:
        """Name → values joined by ``,``: the forwarded headers as the S3 server reads them
        (:func:`kubepie.s3.sigv4.headers_from_asgi`), with the framing it gets."""
        out: dict[str, str] = {}
        for name, value in self.framing():
            text = value.decode("latin-1")
            key = name.decode("latin-1")
            out[key] = f"{out[key]},{text}" if key in out else text
        return out

    def framing(self) -> Headers:
        """The forwarded headers followed by the framing header the forwarder writes."""
        out = list(self.forwarded)
        if self.chunked:
            out.append((b"transfer-encoding", b"chunked"))
        else:
            out.append((b"content-length", str(self.length or 0).encode()))
        return out


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def prepare(client: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """The headers to forward and decide on; raise :class:`BadRequest` for the refusals above."""
    items = [(name.lower(), value) for name, value in client]
    connection: set[bytes] = set()
    for name, value in items:
        if name == b"connection":
            connection |= _tokens(value)
    named = sorted(connection - CONNECTION_OPTIONS)
    if named:
        listed = ", ".join(n.decode("latin-1") for n in named)
        raise BadRequest(
            f"the Connection header names {listed}: only hop-by-hop headers may be listed there"
        )
    seen: set[bytes] = set()
    forwarded: Headers = []
    length: int | None = None
    chunked = False
    authorization: str | None = None
    cookie: str | None = None
    for name, value in items:
        if name in SINGLE:
            if name in seen:
                raise BadRequest(f"the {name.decode('latin-1')} header appears more than once")
            seen.add(name)
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise BadRequest("Content-Length is not a number") from None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"cookie":
            cookie = value.decode("latin-1") if cookie is None else cookie
        elif not (name in HOP_BY_HOP or name in connection or name.startswith(PRIVATE_PREFIX)):
            forwarded.append((name, value))
    return RequestHeaders(
        tuple(forwarded),
        None if chunked else (length or 0),
        chunked,
        authorization=authorization,
        cookie=cookie,
    )


def upstream(
    request: RequestHeaders, secret: bytes, replace: dict[bytes, bytes] | None = None
) -> Headers:
    """The header list written to the file server: the forwarded headers, with ``replace``
    (lower-case names: a rewritten ``Destination``, the router's own ``X-KubePie-*``
    headers) set, the per-server secret and the framing."""
    replace = replace or {}
    out: Headers = [(n, v) for n, v in request.forwarded if n not in replace]
    out.extend(replace.items())
    out.append((SECRET_HEADER, secret))
    if request.chunked:
        out.append((b"transfer-encoding", b"chunked"))
    else:
        out.append((b"content-length", str(request.length or 0).encode()))
    return out
