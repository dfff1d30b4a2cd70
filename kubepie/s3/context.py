"""What an S3 operation handler receives (:class:`Context`) and answers (:class:`Response`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from starlette.types import Receive, Send

from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mount, Mounts
from kubepie.s3 import errors, sigv4
from kubepie.s3.settings import S3Settings

XML = "application/xml"
_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(slots=True)
class Response:
    """A status, headers and either a small ``body`` or a ``stream`` that sends the body;
    ``after`` is blocking work to do once the answer is sent (freeing a replaced file)."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: Callable[[Send], Awaitable[None]] | None = None
    after: Callable[[], None] | None = None

    @classmethod
    def xml(cls, body: bytes, status: int = 200) -> Response:
        return cls(status, [("content-type", XML)], body)


@dataclass(slots=True)
class Context:
    request: sigv4.HttpRequest
    query: dict[str, str]
    bucket: str
    key: str
    receive: Receive
    verified: sigv4.Verified
    mounts: Mounts
    settings: S3Settings

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.request.headers)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.request.headers.get(name, default)

    def mount(self, name: str | None = None) -> Mount:
        bucket = self.bucket if name is None else name
        try:
            return self.mounts[bucket]
        except FileServerError as exc:
            raise errors.NoSuchBucket(
                "The specified bucket does not exist", resource=bucket
            ) from exc

    def writable_mount(self) -> Mount:
        mount = self.mount()
        if mount.read_only:
            raise errors.AccessDenied(f"bucket {mount.name!r} is read-only", resource=self.key)
        return mount


async def in_thread(func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run blocking filesystem work off the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


def user_metadata(headers: dict[str, str]) -> dict[str, str]:
    """``x-amz-meta-*`` request headers, by lower-case name without the prefix."""
    return {
        name[len("x-amz-meta-") :]: value
        for name, value in headers.items()
        if name.startswith("x-amz-meta-") and len(name) > len("x-amz-meta-")
    }
