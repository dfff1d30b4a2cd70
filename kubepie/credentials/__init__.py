"""App credentials: access key id + secret pairs minted after login, for WebDAV and S3 clients.

A logged-in user creates credentials (optionally expiring, read-only, or confined to a path
prefix), lists and revokes them; the router authenticates HTTP Basic (``verify``) and SigV4
(``authenticate``, then its own signature check) with them and re-resolves the owner's identity
on every use.

Layers, one direction: ``store`` (the ``CredentialStore`` protocol and policy) and ``sqlite``
(the SQLite implementation, the only module importing ``sqlite3``) → ``cipher`` (AES-256-GCM at
rest, the only module importing ``cryptography``) → ``models`` (pure data and pure access
checks) → ``errors``. This package may import ``identity``; it never imports other ``kubepie``
packages, ``hubintegration`` or ``gpu``. Nothing happens at import time.
"""
