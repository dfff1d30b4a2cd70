"""``kubepie credentials``: key generation, the start-up check and key rotation, as processes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from kubepie.credentials.cipher import EncryptionKey, SecretCipher, generate_key_text
from kubepie.credentials.sqlite import SqliteCredentialStore
from tests.kubepie.credentials.conftest import ALICE

# Until the command is listed in kubepie.cli.COMMANDS, drive the module as ``kubepie`` would.
_MAIN = (
    "import argparse, sys\n"
    "from kubepie.cli import credentials as command\n"
    "parser = argparse.ArgumentParser(prog='kubepie credentials')\n"
    "command.configure(parser)\n"
    "sys.exit(command.run(parser.parse_args(sys.argv[1:])))\n"
)
CONFIG = """
public_url: https://files.example.org
oidc: {issuer: "https://idp.example.org", client_id: kubepie}
mounts: [{name: home, path: "/home/{username}"}]
state_dir: STATE
"""


async def _cli(*argv: str, keys: str = "", config: Path | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEPIE_")}
    env["KUBEPIE_OIDC_CLIENT_SECRET"] = "client-secret"
    if keys:
        env["KUBEPIE_CREDENTIALS_ENCRYPTION_KEYS"] = keys
    if config is not None:
        env["KUBEPIE_CONFIG"] = str(config)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _MAIN,
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_generate_key_prints_a_usable_key() -> None:
    status, out, _ = await _cli("generate-key")
    assert status == 0
    assert len(EncryptionKey.from_text(out.strip()).material) == 32


async def test_rotation_with_reseal(tmp_path: Path) -> None:
    config = tmp_path / "kubepie.yaml"
    config.write_text(CONFIG.replace("STATE", str(tmp_path / "state")))
    old, new = generate_key_text(), generate_key_text()
    old_key, new_key = EncryptionKey.from_text(old), EncryptionKey.from_text(new)
    database = tmp_path / "state" / "credentials.sqlite3"
    async with await SqliteCredentialStore.open(database, SecretCipher([old_key])) as store:
        made = await store.create(ALICE)

    status, out, err = await _cli("check", keys=f"{new},{old}", config=config)
    assert (status, err) == (0, "")
    assert f"new secrets use {new_key.key_id}" in out

    status, out, _ = await _cli("reseal", keys=f"{new},{old}", config=config)
    assert status == 0
    assert f"1 secrets re-encrypted with key {new_key.key_id}" in out

    assert (await _cli("check", keys=new, config=config))[0] == 0
    async with await SqliteCredentialStore.open(database, SecretCipher([new_key])) as store:
        await store.verify(made.access_key_id, made.secret_access_key)

    status, _, err = await _cli("check", keys=old, config=config)
    assert status == 4
    assert f"encrypted with key(s) {new_key.key_id}" in err
    assert old not in err
    assert new not in err


async def test_configuration_problems_exit_2_naming_the_key(tmp_path: Path) -> None:
    status, _, err = await _cli("check")
    assert status == 2
    assert "needs --config" in err
    config = tmp_path / "kubepie.yaml"
    config.write_text(CONFIG.replace("STATE", str(tmp_path)))
    status, _, err = await _cli("reseal", config=config)
    assert status == 2
    assert "credentials: field required" in err
