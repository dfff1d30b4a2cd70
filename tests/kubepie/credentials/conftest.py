"""Stores on a real SQLite file in a temporary state directory, with a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubepie.credentials.cipher import EncryptionKey, SecretCipher, generate_key_text
from kubepie.credentials.models import Owner
from kubepie.credentials.sqlite import SqliteCredentialStore
from kubepie.credentials.store import CredentialPolicy

ALICE = Owner("https://idp.example", "sub-alice", "alice")
BOB = Owner("https://idp.example", "sub-bob", "bob")


class Clock:
    """A clock the test moves by hand (POSIX seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def key() -> EncryptionKey:
    return EncryptionKey.from_text(generate_key_text())


@pytest.fixture
def cipher(key: EncryptionKey) -> SecretCipher:
    return SecretCipher([key])


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "credentials.sqlite3"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(
    db_path: Path, cipher: SecretCipher, clock: Clock
) -> AsyncIterator[SqliteCredentialStore]:
    async with await SqliteCredentialStore.open(
        db_path, cipher, CredentialPolicy(), clock=clock
    ) as opened:
        yield opened
