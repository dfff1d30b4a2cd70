"""The ``CredentialStore`` protocol, the policy a store enforces, and credential generation.

Contract for implementations:

* every method is a coroutine; blocking drivers run in a worker thread;
* owner scoping: :meth:`~CredentialStore.list_for` and :meth:`~CredentialStore.revoke` only ever
  see the given owner's credentials; another owner's id is :class:`CredentialNotFound`;
* revocation is effective at once for every store instance on the same storage: lookups read
  the storage, they are not cached;
* the secret leaves the store only in :class:`NewCredential` (once, at creation) and in
  :class:`ActiveCredential` (for SigV4 verification); it is encrypted at rest and never logged.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from kubepie.credentials.models import ActiveCredential, Credential, NewCredential, Owner

#: Access key ids: ``KP`` and 18 characters of the RFC 4648 base32 alphabet (90 random bits),
#: 20 uppercase characters like an AWS access key id, without the look-alikes 0/O and 1/I.
ACCESS_KEY_ID = re.compile(r"^KP[A-Z2-7]{18}$")
_ACCESS_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#: Secret access keys are 40 characters, like AWS's: URL-safe base64 of 30 random bytes.
SECRET_LENGTH = 40


def new_access_key_id() -> str:
    return "KP" + "".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(18))


def new_secret_access_key() -> str:
    return secrets.token_urlsafe(SECRET_LENGTH * 3 // 4)


def new_credential_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class CredentialPolicy:
    """Limits a store enforces; times in seconds."""

    #: Write ``last_used_at`` at most this often per credential: one write a minute keeps the
    #: "last used" column useful to people without a database write on every request.
    last_used_interval: float = 60.0
    #: Longest lifetime a credential may be given; a request without ``expires_in`` gets this.
    #: ``None``: credentials may live until revoked.
    max_lifetime: float | None = None
    #: Most unrevoked credentials one owner may hold; bounds what one account can store.
    max_per_owner: int = 100


class CredentialStore(Protocol):
    async def create(
        self,
        owner: Owner,
        *,
        description: str = "",
        expires_in: float | None = None,
        read_only: bool = False,
        prefix: str = "",
    ) -> NewCredential:
        """A new credential of ``owner``; the returned secret is never shown again.

        ``expires_in`` is in seconds from now. Raises :class:`InvalidCredentialRequest`.
        """
        ...

    async def list_for(self, owner: Owner) -> tuple[Credential, ...]:
        """``owner``'s unrevoked credentials (expired ones included), oldest first."""
        ...

    async def revoke(self, owner: Owner, credential_id: str) -> None:
        """Revoke ``owner``'s credential at once; :class:`CredentialNotFound` if not theirs."""
        ...

    async def authenticate(self, access_key_id: str) -> ActiveCredential:
        """The usable credential with this access key id, secret included (for SigV4).

        Raises a :class:`CredentialRefused` subclass (unknown, revoked, expired). The caller
        verifies the signature, then calls :meth:`record_use`.
        """
        ...

    async def verify(self, access_key_id: str, secret_access_key: str) -> Credential:
        """The credential, if ``secret_access_key`` is its secret (HTTP Basic); records the use.

        Compares in constant time; raises a :class:`CredentialRefused` subclass otherwise.
        """
        ...

    async def record_use(self, credential: Credential) -> None:
        """Note that ``credential`` was used now (throttled: at most once per interval)."""
        ...
