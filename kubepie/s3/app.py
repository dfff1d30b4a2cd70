"""The S3 ASGI application: authentication, routing to operations, error rendering.

Path-style only: ``/<bucket>/<key>``, one bucket per storage mount. Every request is
authenticated by the injected :class:`~kubepie.s3.auth.S3Authenticator` before anything is
read from disk; errors are rendered here, in one place, as S3 ``<Error>`` documents (status
only for HEAD). Build it with :func:`create_s3_app` and serve it with any ASGI server.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mounts
from kubepie.s3 import bucket_ops, errors, multipart_ops, object_ops, sigv4
from kubepie.s3.auth import S3Authenticator
from kubepie.s3.body import ClientDisconnected
from kubepie.s3.context import Context, Response
from kubepie.s3.settings import S3Settings
from kubepie.s3.xml import error as error_document

logger = logging.getLogger(__name__)

Handler = Callable[[Context], Awaitable[Response]]

#: Sub-resources this server does not implement (answered 501 rather than misread as a
#: plain GET or PUT of the bucket or object).
_BUCKET_UNSUPPORTED = frozenset(
    {
        "acl", "policy", "cors", "lifecycle", "versioning", "versions", "website", "tagging",
        "encryption", "logging", "notification", "replication", "requestPayment",
        "object-lock", "accelerate", "analytics", "inventory", "metrics", "ownershipControls",
        "publicAccessBlock", "intelligent-tiering", "policyStatus",
    }
)  # fmt: skip
_OBJECT_UNSUPPORTED = frozenset(
    {"acl", "tagging", "retention", "legal-hold", "torrent", "attributes", "restore", "select"}
)


def _route(method: str, bucket: str, key: str, query: dict[str, str], ctx: Context) -> Handler:
    if not bucket:
        if method in ("GET", "HEAD"):
            return bucket_ops.list_all_buckets
        raise errors.MethodNotAllowed("only GET is allowed on the service")
    if not key:
        if _BUCKET_UNSUPPORTED & query.keys():
            raise errors.OperationNotImplemented("this bucket sub-resource is not implemented")
        if method == "GET" and "location" in query:
            return bucket_ops.get_location
        if method == "GET" and "uploads" in query:
            return multipart_ops.list_bucket_uploads
        if method == "HEAD":
            return bucket_ops.head_bucket
        if method == "GET":
            return bucket_ops.list_objects
        if method == "PUT":
            return bucket_ops.create_bucket
        if method == "POST" and "delete" in query:
            return bucket_ops.delete_objects
        if method == "DELETE":
            raise errors.AccessDenied("buckets are the configured storage mounts")
        raise errors.MethodNotAllowed(f"{method} is not allowed on a bucket")
    if _OBJECT_UNSUPPORTED & query.keys():
        raise errors.OperationNotImplemented("this object sub-resource is not implemented")
    if "uploadId" in query:
        by_method: dict[str, Handler] = {
            "PUT": multipart_ops.upload_part,
            "POST": multipart_ops.complete_multipart,
            "DELETE": multipart_ops.abort_upload,
            "GET": multipart_ops.list_upload_parts,
        }
        if method in by_method:
            return by_method[method]
    elif method == "POST" and "uploads" in query:
        return multipart_ops.create_upload
    elif method == "GET":
        return _get
    elif method == "HEAD":
        return _head
    elif method == "PUT":
        if ctx.header("x-amz-copy-source") is not None:
            return object_ops.copy_object
        return object_ops.put_object
    elif method == "DELETE":
        return object_ops.delete_object
    raise errors.MethodNotAllowed(f"{method} is not allowed on an object")


async def _get(ctx: Context) -> Response:
    return await object_ops.get_object(ctx, head=False)


async def _head(ctx: Context) -> Response:
    return await object_ops.get_object(ctx, head=True)


def _split_target(raw_path: bytes) -> tuple[str, str]:
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.InvalidArgument("the path is not valid UTF-8") from exc
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class S3App:
    """The ASGI callable; see :func:`create_s3_app`."""

    def __init__(
        self, mounts: Mounts, authenticator: S3Authenticator, settings: S3Settings
    ) -> None:
        self.mounts = mounts
        self.authenticator = authenticator
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        receive = _TrackedReceive(receive)
        request_id = secrets.token_hex(8).upper()
        resource = ""
        try:
            raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
            raw_path = raw_path.partition(b"?")[0]
            request = sigv4.HttpRequest(
                method=method,
                raw_path=raw_path.decode("utf-8", "replace"),
                raw_query=scope.get("query_string", b"").decode("utf-8", "replace"),
                headers=sigv4.headers_from_asgi(scope["headers"]),
            )
            bucket, key = _split_target(raw_path)
            resource = f"/{bucket}/{key}" if bucket else "/"
            verified = await self.authenticator.authenticate(request)
            query = dict(sigv4.query_pairs(request.raw_query))
            ctx = Context(
                request=request,
                query=query,
                bucket=bucket,
                key=key,
                receive=receive,
                verified=verified,
                mounts=self.mounts,
                settings=self.settings,
            )
            handler = _route(method, bucket, key, query, ctx)
            response = await handler(ctx)
        except ClientDisconnected:
            return
        except errors.S3Error as exc:
            response = _error_response(exc, resource, request_id)
        except FileServerError as exc:
            response = _error_response(errors.from_fileserver(exc, resource), resource, request_id)
        except OSError as exc:
            response = _error_response(errors.from_oserror(exc, resource), resource, request_id)
        except Exception:
            logger.exception("S3 %s %s failed", method, resource)
            response = _error_response(
                errors.S3Error("We encountered an internal error."), resource, request_id
            )
        if response.status >= 400 and not await receive.drain(_DRAIN_LIMIT, scope["headers"]):
            # The client is still sending a body we will not read: end the connection
            # after this answer rather than parse the rest of that body as a request.
            response.headers.append(("connection", "close"))
        try:
            await _send(send, response, request_id, head=method == "HEAD")
        finally:
            if response.after is not None:
                await asyncio.to_thread(response.after)


#: Unread request body drained before an error answer to keep the connection usable.
_DRAIN_LIMIT = 8 << 20


class _TrackedReceive:
    """The ASGI ``receive`` that remembers whether the request body was read to its end."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.started = False
        self.complete = False

    async def __call__(self) -> Message:
        self.started = True
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.complete = True
        return message

    async def drain(self, limit: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """Read and drop the rest of the body, up to ``limit`` bytes; true if it ended.

        A client waiting for ``100 Continue`` has sent no body yet: it is not invited to
        send one just to have it dropped.
        """
        if not self.started and (b"expect", b"100-continue") in (
            (name.lower(), value.lower()) for name, value in headers
        ):
            return False
        seen = 0
        while not self.complete and seen <= limit:
            message = await self()
            seen += len(message.get("body", b""))
        return self.complete


def _error_response(exc: errors.S3Error, resource: str, request_id: str) -> Response:
    body = error_document(exc.code, exc.message, exc.resource or resource, request_id)
    headers = [("content-type", "application/xml")]
    if exc.status == 416:
        headers.append(("content-range", "bytes */*"))
    return Response(exc.status, headers, body)


async def _send(send: Send, response: Response, request_id: str, *, head: bool) -> None:
    headers = [(b"x-amz-request-id", request_id.encode())]
    headers.extend(
        (k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in response.headers
    )
    has_length = any(k == "content-length" for k, _ in response.headers)
    if response.stream is None and not has_length and response.status not in (204, 304):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if response.stream is not None and not head:
        await response.stream(send)
        return
    body = b"" if head else response.body
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_s3_app(
    mounts: Mounts, authenticator: S3Authenticator, settings: S3Settings | None = None
) -> ASGIApp:
    """The S3 API over ``mounts`` (one bucket per mount), authenticated by ``authenticator``."""
    return S3App(mounts, authenticator, settings or S3Settings())
