"""The services one router process shares between its listeners, and forwarding to a user.

:class:`RouterContext` is built once in the lifespan (:mod:`kubepie.router.app`) and passed
explicitly to every handler; nothing here is global. :meth:`RouterContext.forward` is the
request path every listener shares: make sure the user's server runs, forward, and on an
unreachable server tell the backend and retry once with a fresh server.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from identity.models import Identity
from kubepie.credentials.store import CredentialStore
from kubepie.router.accounting import AccountingLog, RequestRecord
from kubepie.router.authn import Authenticator
from kubepie.router.errors import UpstreamUnavailable
from kubepie.router.headers import RequestHeaders, prepare
from kubepie.router.metrics import RouterMetrics
from kubepie.router.proxy import BodyCheck, Transfer, forward
from kubepie.router.servers import ServerPool, Upstream
from kubepie.router.upstream import UpstreamPool

#: Picks the listener address of an upstream (WebDAV: ``address``; S3: its S3 listener).
AddressOf = Callable[[Upstream], str | None]
#: Does one request, filling in its record and transfer counters.
Exchange = Callable[[RequestRecord, Transfer], Awaitable[None]]
#: Answers an error raised before any response was started, in the listener's dialect;
#: returns the status sent.
ErrorAnswer = Callable[[Exception], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class RouterContext:
    authenticator: Authenticator
    store: CredentialStore
    backend: ServerPool
    pool: UpstreamPool
    accounting: AccountingLog
    metrics: RouterMetrics

    async def upstream(self, identity: Identity) -> Upstream:
        started = time.monotonic()
        upstream = await self.backend.ensure(identity)
        took = time.monotonic() - started
        if took > 0.005:  # a start (or a wait for one), not a lookup
            self.metrics.spawn.observe(took)
        return upstream

    async def forward(
        self,
        identity: Identity,
        address_of: AddressOf,
        *,
        method: str,
        target: bytes,
        headers: Iterable[tuple[bytes, bytes]] | RequestHeaders,
        receive: Receive,
        send: Send,
        transfer: Transfer,
        replace: dict[bytes, bytes] | None = None,
        body_check: BodyCheck | None = None,
    ) -> None:
        request = headers if isinstance(headers, RequestHeaders) else prepare(headers)
        for attempt in (1, 2):
            upstream = await self.upstream(identity)
            address = address_of(upstream)
            if address is None:
                raise UpstreamUnavailable("the file server has no listener for this protocol")
            try:
                await forward(
                    self.pool,
                    address,
                    upstream.secret,
                    method=method,
                    target=target,
                    headers=request,
                    receive=receive,
                    send=send,
                    transfer=transfer,
                    replace=replace,
                    body_check=body_check,
                )
                return
            except UpstreamUnavailable:
                self.pool.forget(address)
                await self.backend.report_failure(identity)
                if attempt == 2:
                    raise
            finally:
                await self.backend.touch(identity)

    async def accounted(
        self, listener: str, scope: Scope, exchange: Exchange, answer_error: ErrorAnswer
    ) -> None:
        """Run ``exchange`` and account for it: an error before the response started is
        answered by ``answer_error``; one after it can only abort the connection."""
        record = RequestRecord(scope["method"], scope["path"], started=time.monotonic())
        transfer = Transfer()
        try:
            await exchange(record, transfer)
        except Exception as exc:
            if transfer.started_response:
                raise
            record.status = await answer_error(exc)
        else:
            record.status = transfer.status
        finally:
            record.bytes_in, record.bytes_out = transfer.bytes_in, transfer.bytes_out
            self.account(listener, record)

    def account(self, listener: str, record: RequestRecord) -> None:
        now = time.monotonic()
        self.accounting.write(record)
        self.metrics.observe(
            listener,
            record.method,
            record.status,
            record.bytes_in,
            record.bytes_out,
            now - record.started,
        )
