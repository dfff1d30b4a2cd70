"""Who may talk to this file server: the pure checks and the ASGI gate in front of WebDAV.

* standalone: HTTP Basic with the configured access key / secret key;
* backend: the per-server secret in ``X-KubePie-Server-Secret`` (set by the router, which has
  already authenticated the user; the verified identity is this server's own identity).

Secrets are compared with :func:`hmac.compare_digest` and never logged; the secret header is
removed from the request before it reaches the application.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from kubepie.fileserver.asgi import ASGIApp, Receive, Scope, Send, header, send_plain
from kubepie.fileserver.settings import BasicCredentials, ServerSecret

SECRET_HEADER = "x-kubepie-server-secret"  # noqa: S105 (a header name)
#: Set by the router when the caller may create names at the target but not replace or delete
#: existing ones (a WLCG ``storage.create`` token without ``storage.modify`` there): the file
#: server then creates exclusively and refuses to replace or remove anything.
CREATE_ONLY_HEADER = "x-kubepie-create-only"
_REALM = 'Basic realm="kubepie", charset="UTF-8"'


def basic_ok(authorization: str | None, creds: BasicCredentials) -> bool:
    """True when ``authorization`` is ``Basic base64(access_key:secret_key)`` for ``creds``."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    # Both comparisons always run, so timing does not tell which half was wrong.
    user_ok = hmac.compare_digest(user, creds.access_key.encode())
    password_ok = hmac.compare_digest(password, creds.secret_key.encode())
    return bool(sep) and user_ok and password_ok


def secret_ok(value: str | None, secret: ServerSecret) -> bool:
    """True when ``value`` is the per-server secret."""
    if value is None:
        return False
    return hmac.compare_digest(value.encode(), secret.value.encode())


class AuthGate:
    """ASGI middleware: 401 unless the request is authenticated for this server."""

    def __init__(self, app: ASGIApp, auth: BasicCredentials | ServerSecret) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if isinstance(self.auth, ServerSecret):
            ok = secret_ok(header(scope, SECRET_HEADER), self.auth)
            challenge: list[tuple[bytes, bytes]] = []
        else:
            ok = basic_ok(header(scope, "authorization"), self.auth)
            challenge = [(b"www-authenticate", _REALM.encode())]
        if not ok:
            await send_plain(send, 401, "authentication required\n", challenge)
            return
        scope = dict(scope)
        scope["headers"] = [
            (k, v) for k, v in scope["headers"] if k.lower() != SECRET_HEADER.encode()
        ]
        await self.app(scope, receive, send)
