"""The dev issuer's RSA signing key: generated once, kept in the demo state directory.

The key is a PEM file written ``0600`` (created with that mode, never readable by others in
between). Keeping it across runs lets tokens printed by an earlier run keep validating while
they last. ``kid`` is the RFC 7638 thumbprint, so a replaced key gets a new ``kid``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from kubepie.demo.errors import DemoError

ALGORITHM = "RS256"


class SigningKey:
    """An RSA private key with its public JWK; signs RS256 JWTs."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._private = private_key
        public: dict[str, Any] = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        members = json.dumps(
            {"e": public["e"], "kty": "RSA", "n": public["n"]}, separators=(",", ":")
        )
        digest = hashlib.sha256(members.encode()).digest()
        self.kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        self.public_jwk: dict[str, Any] = {
            **public,
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key in ``path``; a new one written there (``0600``) if the file does not exist."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            key = cls.generate()
            key._write(path)
            return key
        except OSError as exc:
            raise DemoError(f"cannot read the dev issuer key {path}: {exc.strerror}") from exc
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except ValueError as exc:
            raise DemoError(f"{path} is not a PEM key; delete it to make a new one") from exc
        if not isinstance(private, rsa.RSAPrivateKey):
            raise DemoError(f"{path} is not an RSA key; delete it to make a new one")
        return cls(private)

    def _write(self, path: Path) -> None:
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(pem)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._private.public_key()

    def jwks(self) -> dict[str, Any]:
        """The JWK Set the issuer publishes."""
        return {"keys": [self.public_jwk]}

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """``claims`` as a compact RS256 JWS with this key's ``kid``."""
        return jwt.encode(claims, self._private, ALGORITHM, headers={"kid": self.kid, "typ": typ})
