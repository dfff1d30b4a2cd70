"""Browser session cookies: signed and encrypted (AES-256-GCM), with an expiry inside.

A cookie value is ``v1.`` + base64url(nonce || ciphertext || tag) of a JSON object; GCM both
encrypts and authenticates, so a cookie can be neither read nor changed by the browser, and
the cookie *name* is bound as associated data (a login-flow cookie does not open as a session).
Keys are derived with HKDF-SHA256 from the configured credential encryption keys (newest
first), so sessions survive a router restart and key rotation works the same way: cookies are
sealed with the first key and opened with any. Nothing else is stored server-side.

This is the router's only module importing ``cryptography``; a cookie that does not open is
simply absent (``None``), never an error that could tell an attacker why.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"kubepie.router.session-cookie.v1"
_PREFIX = "v1."
_NONCE = 12
#: Cookies longer than this are refused before decoding (browsers cap a cookie near 4 KiB).
MAX_COOKIE = 4096


def derive_key(material: bytes) -> bytes:
    """The cookie key for one configured encryption key (HKDF-SHA256, a label of its own)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material)


@dataclass(frozen=True, slots=True)
class CookieSealer:
    """Seals and opens cookie payloads; ``keys`` newest first (the first one seals)."""

    keys: Sequence[bytes] = field(repr=False)
    clock: Callable[[], float] = time.time

    @classmethod
    def from_materials(cls, materials: Sequence[bytes]) -> CookieSealer:
        if not materials:
            raise ValueError("at least one key is needed")
        return cls(tuple(derive_key(m) for m in materials))

    def seal(self, name: str, payload: Mapping[str, Any], lifetime: float) -> str:
        body = dict(payload)
        body["_exp"] = int(self.clock() + lifetime)
        data = json.dumps(body, separators=(",", ":")).encode()
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + AESGCM(self.keys[0]).encrypt(nonce, data, name.encode())
        return _PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, name: str, value: str | None) -> dict[str, Any] | None:
        """The payload of a cookie sealed for ``name`` and not expired, else ``None``."""
        if not value or len(value) > MAX_COOKIE or not value.startswith(_PREFIX):
            return None
        text = value[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= _NONCE:
            return None
        for key in self.keys:
            try:
                data = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], name.encode())
            except InvalidTag:
                continue
            body = json.loads(data)
            if not isinstance(body, dict):
                return None
            expires = body.pop("_exp", None)
            if not isinstance(expires, int) or expires <= self.clock():
                return None
            return body
        return None
