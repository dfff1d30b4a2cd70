"""AES-256-GCM sealing of secrets, key parsing and key ids."""

from __future__ import annotations

import base64

import pytest

from kubepie.credentials.cipher import EncryptionKey, SecretCipher, generate_key_text
from kubepie.credentials.errors import EncryptionKeyError


def test_sealed_secret_opens_only_for_its_credential() -> None:
    cipher = SecretCipher([EncryptionKey.from_text(generate_key_text())])
    key_id, sealed = cipher.seal("s3cr3t-value", "cred-1")
    assert key_id == cipher.primary_key_id
    assert b"s3cr3t-value" not in sealed
    assert cipher.open(key_id, sealed, "cred-1") == "s3cr3t-value"
    with pytest.raises(EncryptionKeyError, match="altered or copied"):
        cipher.open(key_id, sealed, "cred-2")
    with pytest.raises(EncryptionKeyError):
        cipher.open(key_id, sealed[:5], "cred-1")


def test_each_sealing_uses_a_fresh_nonce() -> None:
    cipher = SecretCipher([EncryptionKey.from_text(generate_key_text())])
    assert cipher.seal("same", "c")[1] != cipher.seal("same", "c")[1]


def test_newest_key_seals_and_older_keys_still_open() -> None:
    old = EncryptionKey.from_text(generate_key_text())
    new = EncryptionKey.from_text(generate_key_text())
    _, sealed_old = SecretCipher([old]).seal("secret", "c")
    rotated = SecretCipher([new, old])
    assert rotated.seal("secret", "c")[0] == new.key_id
    assert rotated.open(old.key_id, sealed_old, "c") == "secret"
    with pytest.raises(EncryptionKeyError, match="not among the configured"):
        SecretCipher([new]).open(old.key_id, sealed_old, "c")


def test_keys_parse_from_standard_and_urlsafe_base64() -> None:
    raw = bytes(range(32))
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert EncryptionKey.from_text(standard) == EncryptionKey.from_text(urlsafe)
    assert EncryptionKey.from_text(standard).material == raw


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_bad_keys_are_refused(text: str) -> None:
    with pytest.raises(EncryptionKeyError, match="base64"):
        EncryptionKey.from_text(text)


def test_key_material_never_appears_in_reprs() -> None:
    text = generate_key_text()
    key = EncryptionKey.from_text(text)
    cipher = SecretCipher([key])
    for shown in (repr(key), repr(cipher), str(key)):
        assert text not in shown
        assert repr(key.material) not in shown
    assert key.key_id in repr(cipher)


def test_duplicate_and_missing_keys_are_refused() -> None:
    key = EncryptionKey.from_text(generate_key_text())
    with pytest.raises(EncryptionKeyError, match="twice"):
        SecretCipher([key, key])
    with pytest.raises(EncryptionKeyError, match="at least one"):
        SecretCipher([])
