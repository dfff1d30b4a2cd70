"""Headers that keep user content passive in a browser, on every answer that may carry it.

Files are served from the router's own origin (``/dav``, the web UI's downloads) and from
the S3 listener (another port of the same host: the same *site*, so the session cookie goes
along). A user's HTML, SVG or XML file that a browser rendered there could script the
visitor's session (mint app credentials with the JSON API, read their files). So every answer
of ``/dav``, S3 and the web UI's downloads, file or error, gets:

* ``X-Content-Type-Options: nosniff``: the browser keeps to the declared type;
* ``Content-Security-Policy: sandbox; default-src 'none'; style-src 'unsafe-inline'``
  (:data:`USER_CONTENT_CSP`): whatever is rendered runs in an opaque origin, with no script,
  no form, no fetch, no plugin; inline styles only, so images and the file server's own
  directory listing still display;
* ``Content-Disposition: attachment`` on a successful ``GET``/``HEAD`` of any type not on a
  short allow-list of passive types (:data:`INLINE_TYPES`: plain text, JSON, raster images,
  audio, video, and octet streams, which browsers only download), so HTML, SVG, XML, XSL,
  JavaScript, PDF, or no type at all, is downloaded, never shown. An ``attachment`` the file
  server already chose is kept. The one exception is the file server's own HTML listing of a
  ``/dav`` folder (a path ending in ``/``), which is shown, sandboxed like the rest.

:class:`UserContent` is a raw ASGI wrapper (it rewrites only the response head, never the
body); :func:`secure_head` is its pure core.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

USER_CONTENT_CSP = b"sandbox; default-src 'none'; style-src 'unsafe-inline'"
#: Media types (lower-case, no parameters) a browser may show inline: they cannot run code.
INLINE_TYPES = frozenset(
    {
        "text/plain",
        "text/csv",
        "application/json",
        "application/octet-stream",
        "binary/octet-stream",  # S3's default type
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/x-icon",
        "image/vnd.microsoft.icon",
    }
)
#: Families of types that are passive whatever the subtype.
INLINE_FAMILIES = ("audio/", "video/")
_REPLACED = frozenset({b"x-content-type-options", b"content-security-policy"})


def media_type(content_type: bytes | None) -> str:
    """The media type of a ``Content-Type`` value, lower-case, without parameters (pure)."""
    if content_type is None:
        return ""
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


def shown_inline(content_type: bytes | None) -> bool:
    """Whether a body of this type may be shown inline by a browser (pure)."""
    kind = media_type(content_type)
    return kind in INLINE_TYPES or kind.startswith(INLINE_FAMILIES)


def attachment(name: str) -> bytes:
    """``attachment`` with the file name as RFC 6266 allows (an ASCII fallback and the UTF-8
    form); no name: a bare ``attachment`` (pure)."""
    if not name:
        return b"attachment"
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    encoded = quote(name, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}".encode("ascii")


def file_name(path: str) -> str:
    """The last segment of a (percent-encoded) request path, decoded; ``""`` for a folder."""
    last = path.split("?", 1)[0].rsplit("/", 1)[-1]
    return unquote(last, errors="replace")


def secure_head(
    headers: list[tuple[bytes, bytes]],
    *,
    method: str,
    status: int,
    path: str,
    listings: bool,
    name: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """The response headers with the user-content headers set (pure); see the module.

    ``listings``: a ``text/html`` answer to a ``GET``/``HEAD`` of a path ending in ``/`` is the
    file server's folder listing and stays inline. ``name``: the download's file name (else
    the path's last segment).
    """
    out = [(n, v) for n, v in headers if n.lower() not in _REPLACED]
    out.append((b"x-content-type-options", b"nosniff"))
    out.append((b"content-security-policy", USER_CONTENT_CSP))
    if method.upper() not in ("GET", "HEAD") or not 200 <= status < 300:
        return out
    ctype = next((v for n, v in out if n.lower() == b"content-type"), None)
    if shown_inline(ctype):
        return out
    if listings and path.endswith("/") and media_type(ctype) == "text/html":
        return out
    disposition = next((v for n, v in out if n.lower() == b"content-disposition"), b"")
    if disposition.strip().lower().startswith(b"attachment"):
        return out
    out = [(n, v) for n, v in out if n.lower() != b"content-disposition"]
    out.append((b"content-disposition", attachment(file_name(path) if name is None else name)))
    return out


class UserContent:
    """ASGI wrapper: :func:`secure_head` on the head of every HTTP answer of ``app``."""

    def __init__(self, app: ASGIApp, *, listings: bool = False) -> None:
        self.app = app
        self.listings = listings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1").split("?", 1)[0]

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = secure_head(
                    list(message.get("headers", [])),
                    method=method,
                    status=message["status"],
                    path=path,
                    listings=self.listings,
                )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured)
