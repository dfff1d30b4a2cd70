"""Errors raised by :mod:`kubepie.credentials`.

The tree, and the HTTP status a request handler answers for each branch::

    CredentialError                    base; never raised itself
    ├── CredentialRefused              401: an app credential does not authenticate; ``reason``
    │   │                              says why (loggable, never secret material)
    │   ├── UnknownAccessKey           no credential has this access key id
    │   ├── SecretMismatch             the secret (HTTP Basic password) is wrong
    │   ├── CredentialRevoked          revoked by its owner
    │   └── CredentialExpired          past its ``expires_at``
    ├── CredentialScopeError           403: authenticated, but the credential does not allow
    │                                  this request (read-only credential writing, path outside
    │                                  its prefix)
    ├── CredentialNotFound             404: no such credential *of this owner* (another owner's
    │                                  credential is reported the same way, never revealed)
    ├── InvalidCredentialRequest       400: bad creation parameters (expiry, prefix, description,
    │                                  too many credentials)
    └── CredentialStoreError           500: the store cannot be used
        ├── EncryptionKeyError         the configured keys cannot decrypt the stored secrets
        │                              (wrong key, key removed too early, tampered row): fail
        │                              closed, never authenticate
        └── StoreUnavailableError      the SQLite file cannot be opened, read or written

Third-party exceptions (``sqlite3``, ``cryptography``) are translated where they are caught, with
``raise ... from exc``; no message contains a secret or key material.
"""

from __future__ import annotations


class CredentialError(Exception):
    """Base of every error raised by :mod:`kubepie.credentials`."""

    #: HTTP status a request handler answers with for this error.
    status: int = 500


class CredentialRefused(CredentialError):
    """An app credential does not authenticate. ``reason`` is short, loggable and secret-free."""

    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownAccessKey(CredentialRefused):
    pass


class SecretMismatch(CredentialRefused):
    pass


class CredentialRevoked(CredentialRefused):
    pass


class CredentialExpired(CredentialRefused):
    pass


class CredentialScopeError(CredentialError):
    """The credential authenticated but does not allow this request."""

    status = 403


class CredentialNotFound(CredentialError):
    status = 404


class InvalidCredentialRequest(CredentialError):
    status = 400


class CredentialStoreError(CredentialError):
    status = 500


class EncryptionKeyError(CredentialStoreError):
    pass


class StoreUnavailableError(CredentialStoreError):
    pass
