"""Encryption of credential secrets at rest: AES-256-GCM (``cryptography``), with key rotation.

SigV4 verification needs the plain secret, so secrets cannot be stored as hashes; they are
stored encrypted instead. Each sealed secret is ``nonce (12 bytes) || ciphertext || tag``, sealed
under one configured key and bound to its credential id as associated data, so a sealed secret
copied onto another row does not open. The row also records the key's :attr:`EncryptionKey.key_id`
(a truncated SHA-256 of the key: it names the key, it does not reveal it).

Key rotation: configure keys newest first. New secrets are sealed with the first key; any
configured key opens the secrets it sealed. To rotate, put a new key first and keep the old one
after it, then call the store's ``reseal()`` (it re-encrypts every stored secret under the
first key); once it returns, the old key may be removed. A secret whose key is no longer
configured fails closed with :class:`EncryptionKeyError`, never authenticates.

This module is the only one that imports ``cryptography``; its exceptions are translated here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kubepie.credentials.errors import EncryptionKeyError

#: AES-256: keys are 32 bytes.
KEY_BYTES = 32
#: The GCM nonce size recommended by NIST SP 800-38D; random per sealing.
NONCE_BYTES = 12
_AAD_LABEL = b"kubepie.credentials.secret.v1\x00"
_KEY_ID_LABEL = b"kubepie.credentials.key-id.v1\x00"


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """One AES-256 key. ``key_id`` is safe to log and store; ``material`` is not."""

    key_id: str
    material: bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, material: bytes) -> EncryptionKey:
        if len(material) != KEY_BYTES:
            raise EncryptionKeyError(f"an encryption key must be {KEY_BYTES} bytes")
        key_id = hashlib.sha256(_KEY_ID_LABEL + material).hexdigest()[:16]
        return cls(key_id=key_id, material=material)

    @classmethod
    def from_text(cls, text: str) -> EncryptionKey:
        """A key from base64 text (standard or URL-safe alphabet, padding optional)."""
        cleaned = text.strip().replace("-", "+").replace("_", "/")
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            material = base64.b64decode(cleaned, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EncryptionKeyError("an encryption key must be base64 text") from exc
        if len(material) != KEY_BYTES:
            raise EncryptionKeyError(
                f"an encryption key must be {KEY_BYTES} random bytes, base64-encoded "
                f"(got {len(material)} bytes)"
            )
        return cls.from_bytes(material)


def generate_key_text() -> str:
    """A new random key as base64 text, the form the configuration takes."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _associated_data(credential_id: str) -> bytes:
    return _AAD_LABEL + credential_id.encode("utf-8")


class SecretCipher:
    """Seals secrets with the newest key and opens them with whichever key sealed them."""

    __slots__ = ("_by_id", "_primary")

    def __init__(self, keys: Sequence[EncryptionKey]) -> None:
        if not keys:
            raise EncryptionKeyError("at least one encryption key is required")
        by_id: dict[str, AESGCM] = {}
        for key in keys:
            if key.key_id in by_id:
                raise EncryptionKeyError(f"encryption key {key.key_id} is configured twice")
            by_id[key.key_id] = AESGCM(key.material)
        self._by_id = by_id
        self._primary = keys[0].key_id

    def __repr__(self) -> str:
        return f"SecretCipher(key_ids={list(self._by_id)!r})"

    @property
    def primary_key_id(self) -> str:
        """The id of the key new secrets are sealed with (the first configured)."""
        return self._primary

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def seal(self, secret: str, credential_id: str) -> tuple[str, bytes]:
        """``(key_id, sealed)`` for ``secret``, bound to ``credential_id``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._by_id[self._primary].encrypt(
            nonce, secret.encode("utf-8"), _associated_data(credential_id)
        )
        return self._primary, nonce + sealed

    def open(self, key_id: str, sealed: bytes, credential_id: str) -> str:
        """The secret sealed by :meth:`seal`; :class:`EncryptionKeyError` if it cannot be opened."""
        aead = self._by_id.get(key_id)
        if aead is None:
            raise EncryptionKeyError(
                f"credential {credential_id} was encrypted with key {key_id}, "
                "which is not among the configured encryption keys"
            )
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            plain = aead.decrypt(nonce, body, _associated_data(credential_id))
        except (InvalidTag, ValueError) as exc:
            raise EncryptionKeyError(
                f"the secret of credential {credential_id} does not decrypt with key {key_id} "
                "(the row was altered or copied)"
            ) from exc
        return plain.decode("utf-8")
