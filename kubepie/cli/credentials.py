"""``kubepie credentials``: encryption keys of the app-credential store, and key rotation.

Actions:

* ``generate-key``: print a new AES-256 key (base64), for ``credentials.encryption_keys``.
* ``check --config FILE``: validate the configuration and open the credential database; fails
  (exit 4) if it holds secrets encrypted with a key that is not configured.
* ``reseal --config FILE``: re-encrypt every stored secret under the first configured key.

Key rotation, step by step (keys are listed newest first; the first one encrypts, any one
decrypts):

1. ``kubepie credentials generate-key``; with several router processes, first add the new key
   *last* everywhere and restart them, so that each can decrypt what the others will write;
2. put the new key first (``KUBEPIE_CREDENTIALS_ENCRYPTION_KEYS=new,old``) and restart;
3. ``kubepie credentials reseal --config FILE``;
4. remove the old key and restart.

Exit status: 0 done; 2 bad configuration; 3 the database cannot be used; 4 a key is missing.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from kubepie.cli.options import add_option

if TYPE_CHECKING:
    from kubepie.settings.models import KubePieSettings

NAME = "credentials"
HELP = "Manage the encryption keys of the app-credential store (generate, check, reseal)."

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3
EXIT_KEY = 4


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["generate-key", "check", "reseal"])
    add_option(parser, "--config", help="the kubepie serve YAML configuration file")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from kubepie.credentials.errors import EncryptionKeyError, StoreUnavailableError
    from kubepie.settings.errors import ConfigError
    from kubepie.settings.loader import load_config

    if args.action == "generate-key":
        from kubepie.credentials.cipher import generate_key_text

        print(generate_key_text())
        return 0
    if not args.config:
        return _fail(f"{args.action} needs --config", EXIT_CONFIG)
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        message = asyncio.run(_act(args.action, settings))
    except EncryptionKeyError as exc:
        return _fail(str(exc), EXIT_KEY)
    except StoreUnavailableError as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    print(f"kubepie credentials: {message}")
    return 0


async def _act(action: str, settings: KubePieSettings) -> str:
    from kubepie.credentials.cipher import SecretCipher
    from kubepie.credentials.sqlite import SqliteCredentialStore

    cipher = SecretCipher(settings.credentials.keys())
    path = settings.credentials_database
    async with await SqliteCredentialStore.open(path, cipher, settings.credentials.policy()) as db:
        if action == "reseal":
            count = await db.reseal()
            return f"{count} secrets re-encrypted with key {cipher.primary_key_id} in {path}"
    return f"{path} opens with the configured keys (new secrets use {cipher.primary_key_id})"


def _fail(message: str, status: int) -> int:
    print(f"kubepie credentials: {message}", file=sys.stderr)
    return status
