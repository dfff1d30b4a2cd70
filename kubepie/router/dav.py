"""``/dav/<mount>/<path>``: WebDAV and plain HTTPS GET/PUT, authenticated and forwarded.

A raw ASGI app (no per-request framework objects on the data path). For each request:
compute the headers that will be forwarded (:func:`kubepie.router.headers.prepare`) and take
every decision from them; authenticate (bearer, Basic app credential, session cookie), decode
the path the way the file server will, check the credential's prefix / read-only flag and the
token's WLCG scopes for every path the request touches (:func:`kubepie.router.paths.dav_targets`:
its own, and ``Destination`` of COPY/MOVE, whose header is rewritten to a plain path on this
host), then forward to the user's server and account for it. A write that creates, by a
token that may create but not modify there (WLCG ``storage.create``), is forwarded with
``X-KubePie-Create-Only``: the file server then creates exclusively and never replaces.
WebDAV headers (``Depth``, ``Overwrite``, ``If``, ``Lock-Token``, ``Timeout``), ranges and
conditional headers pass as they are.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from kubepie.fileserver.auth import CREATE_ONLY_HEADER
from kubepie.router.access import authorize
from kubepie.router.accounting import RequestRecord
from kubepie.router.context import RouterContext
from kubepie.router.errors import BadRequest
from kubepie.router.headers import prepare
from kubepie.router.paths import dav_path, dav_targets
from kubepie.router.proxy import Transfer
from kubepie.router.responses import close_if_body_announced, send_error
from kubepie.router.servers import dav_address

LISTENER = "dav"
CREATE_ONLY = CREATE_ONLY_HEADER.encode("latin-1")


class DavApp:
    def __init__(self, ctx: RouterContext, public_host: str = "") -> None:
        self.ctx = ctx
        #: The public URL's ``host[:port]``: a Destination may name it behind a proxy.
        self.public_host = public_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()

        async def exchange(record: RequestRecord, transfer: Transfer) -> None:
            await self._handle(scope, receive, send, method, raw_path, record, transfer)

        async def answer_error(exc: Exception) -> int:
            close = close_if_body_announced(scope)
            return await send_error(send, exc, json_body=False, extra_headers=close)

        await self.ctx.accounted(LISTENER, scope, exchange, answer_error)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        raw_path: bytes,
        record: RequestRecord,
        transfer: Transfer,
    ) -> None:
        request = prepare(scope["headers"])  # what is forwarded is what is decided on
        headers = request.view()
        principal = await self.ctx.authenticator.authenticate(headers)
        record.principal = principal
        try:
            path = dav_path(raw_path.decode("ascii"))
        except UnicodeDecodeError as exc:
            raise BadRequest("path is not ASCII (percent-encode it)") from exc
        record.mount, record.path = path.mount, path.text
        hosts = (headers.get("host", ""), self.public_host)
        targets, raw_dest = dav_targets(method, path, headers, hosts)
        replace: dict[bytes, bytes] = {}
        if raw_dest is not None:
            replace[b"destination"] = raw_dest.encode("latin-1")
        if authorize(principal, targets):
            replace[CREATE_ONLY] = b"1"
        query: bytes = scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")
        await self.ctx.forward(
            principal.identity,
            dav_address,
            method=method,
            target=target,
            headers=request,
            receive=receive,
            send=send,
            transfer=transfer,
            replace=replace,
        )
