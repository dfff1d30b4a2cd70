"""The SQLite credential store against a real database file."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from kubepie.credentials import sqlite as sqlite_module
from kubepie.credentials.cipher import EncryptionKey, SecretCipher, generate_key_text
from kubepie.credentials.errors import (
    CredentialExpired,
    CredentialNotFound,
    CredentialRefused,
    CredentialRevoked,
    EncryptionKeyError,
    InvalidCredentialRequest,
    SecretMismatch,
    UnknownAccessKey,
)
from kubepie.credentials.models import Credential, Owner
from kubepie.credentials.sqlite import SqliteCredentialStore
from kubepie.credentials.store import (
    ACCESS_KEY_ID,
    SECRET_LENGTH,
    CredentialPolicy,
    CredentialStore,
)
from tests.kubepie.credentials.conftest import ALICE, BOB, Clock


async def test_create_returns_aws_like_keys_shown_once(store: SqliteCredentialStore) -> None:
    new = await store.create(ALICE, description="laptop rclone")
    assert ACCESS_KEY_ID.match(new.access_key_id)
    assert len(new.access_key_id) == 20
    assert new.access_key_id.isupper()
    assert len(new.secret_access_key) == SECRET_LENGTH
    assert new.secret_access_key not in repr(new)
    listed = await store.list_for(ALICE)
    assert [c.id for c in listed] == [new.id]
    assert new.secret_access_key not in repr(listed)
    assert not hasattr(listed[0], "secret_access_key")


async def test_list_shows_created_expires_and_last_used(
    store: SqliteCredentialStore, clock: Clock
) -> None:
    forever = await store.create(ALICE)
    day = await store.create(ALICE, expires_in=86400, read_only=True, prefix="/home/papers/")
    clock.advance(5)
    await store.verify(day.access_key_id, day.secret_access_key)
    by_id = {c.id: c for c in await store.list_for(ALICE)}
    assert by_id[forever.id].expires_at is None
    assert by_id[forever.id].last_used_at is None
    assert by_id[day.id].created_at == clock.now - 5
    assert by_id[day.id].expires_at == clock.now - 5 + 86400
    assert by_id[day.id].last_used_at == clock.now
    assert by_id[day.id].read_only
    assert by_id[day.id].prefix == "home/papers"


async def test_verify_accepts_the_secret_and_refuses_others(store: SqliteCredentialStore) -> None:
    new = await store.create(ALICE)
    credential = await store.verify(new.access_key_id, new.secret_access_key)
    assert credential.owner == ALICE
    with pytest.raises(SecretMismatch):
        await store.verify(new.access_key_id, new.secret_access_key[:-1] + "A")
    with pytest.raises(UnknownAccessKey):
        await store.verify("KP" + "A" * 18, new.secret_access_key)
    with pytest.raises(UnknownAccessKey):
        await store.verify("not-a-key", new.secret_access_key)
    with pytest.raises(SecretMismatch):
        await store.verify(new.access_key_id, "\udcff" + new.secret_access_key)


async def test_verify_compares_in_constant_time(
    store: SqliteCredentialStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(sqlite_module, "compare_digest", spy)
    new = await store.create(ALICE)
    await store.verify(new.access_key_id, new.secret_access_key)
    with pytest.raises(SecretMismatch):
        await store.verify(new.access_key_id, "wrong")
    with pytest.raises(UnknownAccessKey):
        await store.verify("KP" + "B" * 18, "wrong")
    assert len(calls) == 3
    assert calls[0] == (new.secret_access_key.encode(), new.secret_access_key.encode())
    assert calls[1][1] == b"wrong"


async def test_authenticate_returns_the_plain_secret_for_sigv4(
    store: SqliteCredentialStore,
) -> None:
    new = await store.create(ALICE)
    active = await store.authenticate(new.access_key_id)
    assert active.secret_access_key == new.secret_access_key
    assert active.credential.id == new.id
    assert new.secret_access_key not in repr(active)


async def test_revoke_is_immediate_and_owner_scoped(store: SqliteCredentialStore) -> None:
    mine = await store.create(ALICE)
    with pytest.raises(CredentialNotFound):
        await store.revoke(BOB, mine.id)
    assert await store.list_for(BOB) == ()
    await store.verify(mine.access_key_id, mine.secret_access_key)

    await store.revoke(ALICE, mine.id)
    with pytest.raises(CredentialRevoked, match="revoked") as refused:
        await store.verify(mine.access_key_id, mine.secret_access_key)
    assert refused.value.status == 401
    assert await store.list_for(ALICE) == ()
    with pytest.raises(CredentialNotFound):
        await store.revoke(ALICE, mine.id)


async def test_owner_is_issuer_and_sub_not_username(store: SqliteCredentialStore) -> None:
    other_issuer = Owner("https://other-idp.example", ALICE.sub, "alice")
    same_sub_renamed = Owner(ALICE.issuer, ALICE.sub, "alice.renamed")
    new = await store.create(ALICE)
    assert await store.list_for(other_issuer) == ()
    assert [c.id for c in await store.list_for(same_sub_renamed)] == [new.id]


async def test_expired_credential_is_refused_with_reason(
    store: SqliteCredentialStore, clock: Clock
) -> None:
    new = await store.create(ALICE, expires_in=60)
    await store.verify(new.access_key_id, new.secret_access_key)
    clock.advance(60)
    with pytest.raises(CredentialExpired, match=r"expired at \d{4}-\d\d-\d\dT") as refused:
        await store.verify(new.access_key_id, new.secret_access_key)
    assert isinstance(refused.value, CredentialRefused)
    with pytest.raises(CredentialExpired):
        await store.authenticate(new.access_key_id)
    listed = await store.list_for(ALICE)
    assert listed[0].is_expired(clock.now)


async def test_expiry_in_real_time(db_path: Path, cipher: SecretCipher) -> None:
    async with await SqliteCredentialStore.open(db_path, cipher) as real_clock_store:
        new = await real_clock_store.create(ALICE, expires_in=0.3)
        await real_clock_store.verify(new.access_key_id, new.secret_access_key)
        await asyncio.sleep(0.4)
        with pytest.raises(CredentialExpired):
            await real_clock_store.verify(new.access_key_id, new.secret_access_key)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expires_in": 0}, "positive"),
        ({"expires_in": -5}, "positive"),
        ({"expires_in": float("nan")}, "positive"),
        ({"expires_in": True}, "positive"),
        ({"expires_in": 1e12}, "longer than"),
        ({"prefix": "home/../etc"}, "'..'"),
        ({"prefix": "home//x"}, "''"),
        ({"description": "x" * 201}, "longer than 200"),
        ({"description": "bad\nline"}, "non-printable"),
    ],
)
async def test_bad_creation_requests_are_refused(
    store: SqliteCredentialStore, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidCredentialRequest, match=message) as refused:
        await store.create(ALICE, **kwargs)  # type: ignore[arg-type]
    assert refused.value.status == 400
    assert await store.list_for(ALICE) == ()


async def test_policy_limits_lifetime_and_count(db_path: Path, cipher: SecretCipher) -> None:
    policy = CredentialPolicy(max_lifetime=3600, max_per_owner=2)
    async with await SqliteCredentialStore.open(db_path, cipher, policy) as limited:
        unbounded = await limited.create(ALICE)
        assert unbounded.credential.expires_at == pytest.approx(
            unbounded.credential.created_at + 3600
        )
        with pytest.raises(InvalidCredentialRequest, match="3600"):
            await limited.create(ALICE, expires_in=3601)
        second = await limited.create(ALICE, expires_in=60)
        with pytest.raises(InvalidCredentialRequest, match="at most 2"):
            await limited.create(ALICE)
        await limited.create(BOB)
        await limited.revoke(ALICE, second.id)
        await limited.create(ALICE)


async def test_last_use_is_written_at_most_once_per_interval(
    store: SqliteCredentialStore, clock: Clock
) -> None:
    new = await store.create(ALICE)
    await store.verify(new.access_key_id, new.secret_access_key)
    first_use = clock.now
    clock.advance(30)
    await store.verify(new.access_key_id, new.secret_access_key)
    (listed,) = await store.list_for(ALICE)
    assert listed.last_used_at == first_use
    clock.advance(31)
    await store.verify(new.access_key_id, new.secret_access_key)
    (listed,) = await store.list_for(ALICE)
    assert listed.last_used_at == clock.now


async def test_revocation_reaches_a_second_instance_within_a_second(
    db_path: Path, cipher: SecretCipher
) -> None:
    async with (
        await SqliteCredentialStore.open(db_path, cipher) as first,
        await SqliteCredentialStore.open(db_path, cipher) as second,
    ):
        new = await first.create(ALICE)
        await second.verify(new.access_key_id, new.secret_access_key)
        await first.revoke(ALICE, new.id)
        revoked_at = time.monotonic()
        while True:
            try:
                await second.verify(new.access_key_id, new.secret_access_key)
            except CredentialRevoked:
                break
            assert time.monotonic() - revoked_at < 1.0
            await asyncio.sleep(0.01)


async def _works(store: CredentialStore, access_key_id: str, secret: str) -> Credential:
    """Uses only the protocol, so mypy checks that the SQLite store implements it."""
    active = await store.authenticate(access_key_id)
    assert active.secret_access_key == secret
    return await store.verify(access_key_id, secret)


async def test_two_instances_write_concurrently(db_path: Path, cipher: SecretCipher) -> None:
    async with (
        await SqliteCredentialStore.open(db_path, cipher) as first,
        await SqliteCredentialStore.open(db_path, cipher) as second,
    ):
        both = (first, second)
        made = await asyncio.gather(*(store.create(ALICE) for _ in range(15) for store in both))
        await asyncio.gather(
            *(second.verify(new.access_key_id, new.secret_access_key) for new in made[10:]),
            *(first.revoke(ALICE, new.id) for new in made[:10]),
        )
        assert len(await first.list_for(ALICE)) == 20
        assert {c.id for c in await second.list_for(ALICE)} == {new.id for new in made[10:]}


async def test_credentials_survive_a_restart(db_path: Path, key: EncryptionKey) -> None:
    async with await SqliteCredentialStore.open(db_path, SecretCipher([key])) as before:
        new = await before.create(ALICE, read_only=True, prefix="data")
    async with await SqliteCredentialStore.open(db_path, SecretCipher([key])) as after:
        credential = await _works(after, new.access_key_id, new.secret_access_key)
    assert credential.read_only
    assert credential.prefix == "data"


async def test_wrong_key_fails_closed_at_open(db_path: Path, key: EncryptionKey) -> None:
    async with await SqliteCredentialStore.open(db_path, SecretCipher([key])) as before:
        await before.create(ALICE)
    wrong = EncryptionKey.from_text(generate_key_text())
    with pytest.raises(EncryptionKeyError, match=rf"encrypted with key\(s\) {key.key_id}"):
        await SqliteCredentialStore.open(db_path, SecretCipher([wrong]))


async def test_unknown_key_fails_closed_at_lookup(db_path: Path, key: EncryptionKey) -> None:
    wrong = EncryptionKey.from_text(generate_key_text())
    async with (
        await SqliteCredentialStore.open(db_path, SecretCipher([wrong])) as misconfigured,
        await SqliteCredentialStore.open(db_path, SecretCipher([key])) as right,
    ):
        new = await right.create(ALICE)
        with pytest.raises(EncryptionKeyError, match="not among the configured"):
            await misconfigured.verify(new.access_key_id, new.secret_access_key)
        with pytest.raises(EncryptionKeyError):
            await misconfigured.authenticate(new.access_key_id)


async def test_a_sealed_secret_moved_to_another_row_does_not_open(
    store: SqliteCredentialStore, db_path: Path
) -> None:
    victim = await store.create(ALICE)
    attacker = await store.create(BOB)
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "UPDATE credentials SET sealed_secret = "
            "(SELECT sealed_secret FROM credentials WHERE id = ?) WHERE id = ?",
            (victim.id, attacker.id),
        )
    conn.close()
    with pytest.raises(EncryptionKeyError, match="altered or copied"):
        await store.verify(attacker.access_key_id, victim.secret_access_key)


async def test_key_rotation_reseals_under_the_newest_key(db_path: Path, key: EncryptionKey) -> None:
    newer = EncryptionKey.from_text(generate_key_text())
    async with await SqliteCredentialStore.open(db_path, SecretCipher([key])) as old:
        first = await old.create(ALICE)
    async with await SqliteCredentialStore.open(db_path, SecretCipher([newer, key])) as both:
        second = await both.create(ALICE)
        await both.verify(first.access_key_id, first.secret_access_key)
        assert await both.reseal() == 1
        assert await both.reseal() == 0
    async with await SqliteCredentialStore.open(db_path, SecretCipher([newer])) as new_only:
        await new_only.verify(first.access_key_id, first.secret_access_key)
        await new_only.verify(second.access_key_id, second.secret_access_key)
    with pytest.raises(EncryptionKeyError):
        await SqliteCredentialStore.open(db_path, SecretCipher([key]))


def _state_bytes(db_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(db_path.parent.iterdir()))


async def test_database_never_holds_a_secret_in_clear(
    store: SqliteCredentialStore, db_path: Path, key: EncryptionKey
) -> None:
    made = [await store.create(ALICE, description=f"key {i}") for i in range(5)]
    for new in made:
        await store.verify(new.access_key_id, new.secret_access_key)
    await store.revoke(ALICE, made[0].id)
    data = _state_bytes(db_path)
    assert made[1].access_key_id.encode() in data  # the bytes are readable at all
    for new in made:
        assert new.secret_access_key.encode() not in data
        assert new.secret_access_key[:20].encode() not in data
    assert key.material not in data


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_file_is_private(
    store: SqliteCredentialStore, db_path: Path, cipher: SecretCipher
) -> None:
    await store.create(ALICE)
    assert _mode(db_path) == 0o600
    assert _mode(db_path.parent) == 0o700
    assert all(_mode(p) == 0o600 for p in db_path.parent.iterdir())
    os.chmod(db_path, 0o644)
    async with await SqliteCredentialStore.open(db_path, cipher):
        assert _mode(db_path) == 0o600


async def test_secrets_never_reach_the_logs(
    store: SqliteCredentialStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    new = await store.create(ALICE)
    await store.verify(new.access_key_id, new.secret_access_key)
    with pytest.raises(SecretMismatch) as refused:
        await store.verify(new.access_key_id, "guess-" + new.secret_access_key)
    await store.revoke(ALICE, new.id)
    assert "created" in caplog.text
    assert new.secret_access_key not in caplog.text
    assert new.secret_access_key not in str(refused.value)
    assert new.secret_access_key not in repr(store)
