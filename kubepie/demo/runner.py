"""Run the demo: sample data, the dev issuer in this process, ``kubepie serve`` as a child.

:func:`run_demo` prepares everything under the demo directory (sample tree, static directory,
keys, ``kubepie.yaml``), serves the dev issuer with uvicorn on loopback in this event loop,
starts ``kubepie serve --config`` as a supervised child (its output goes to ``serve.log``),
waits until ``/healthz`` answers, mints a bearer token and an app credential for the first demo
user, prints the banner and then waits. SIGINT or SIGTERM stop the child and the issuer; a
child that dies stops the demo with its log tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import signal
import socket
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
import yaml

from kubepie.credentials.cipher import EncryptionKey, SecretCipher, generate_key_text
from kubepie.credentials.errors import CredentialError, CredentialNotFound
from kubepie.credentials.models import Owner
from kubepie.credentials.sqlite import SqliteCredentialStore
from kubepie.demo.accounts import DEMO_USERS, Population, single_user, static_directory
from kubepie.demo.banner import BannerInfo, render
from kubepie.demo.config import (
    AUDIENCE,
    CLIENT_ID,
    DemoLayout,
    Endpoints,
    serve_config,
    serve_environment,
)
from kubepie.demo.errors import DemoError, StartupError
from kubepie.demo.grants import Client, GrantStore
from kubepie.demo.issuer import DevIssuer, bind_loopback
from kubepie.demo.keys import SigningKey
from kubepie.demo.sample import create_sample_tree
from kubepie.demo.tokens import TokenMinter

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Description of the app credential minted at start; it is revoked on the next start.
CREDENTIAL_DESCRIPTION = "kubepie demo: printed at start"
#: Hours the printed bearer token lives.
TOKEN_HOURS = 8.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """``kubepie demo`` options. Ports: ``None`` tries the usual one, then a free one; 0 free."""

    base: Path
    port: int | None = None
    s3_port: int | None = None
    issuer_port: int | None = None
    startup_timeout: float = 60.0
    serve_command: Sequence[str] = field(
        default_factory=lambda: (sys.executable, "-m", "kubepie.cli", "serve")
    )


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def pick_port(wanted: int | None, usual: int, taken: set[int]) -> int:
    """``wanted`` if given (0: any free port), else ``usual`` if free, else any free port."""
    if wanted is None and usual not in taken and _port_free(usual):
        return usual
    if wanted:
        return wanted
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in taken:
            return port


def population_for(euid: int) -> Population:
    """The three demo users as root; otherwise the invoking account alone."""
    if euid == 0:
        return DEMO_USERS
    entry = pwd.getpwuid(euid)
    return single_user(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _secret_file(path: Path) -> str:
    """The text of ``path``, created ``0600`` with a new encryption key if missing."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_text(encoding="ascii").strip()
    text = generate_key_text()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(text + "\n")
    return text


async def _wait_healthy(
    url: str,
    child: asyncio.subprocess.Process,
    within: float,
    log_file: Path,
    stop: asyncio.Event,
) -> bool:
    """True once ``/healthz`` answers; False if the demo is stopped (Ctrl-C) before that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
        while loop.time() < deadline:
            if stop.is_set():
                return False
            if child.returncode is not None:
                raise StartupError(
                    f"kubepie serve exited with status {child.returncode}:\n{_tail(log_file)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return True
            await asyncio.sleep(0.1)
    raise StartupError(f"{url}/healthz did not answer within {within:g}s:\n{_tail(log_file)}")


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_bytes()[-limit:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def _printed_before(path: Path) -> tuple[Owner, str] | None:
    """The owner and id of the credential an earlier run printed, if it left a record."""
    try:
        record = json.loads(path.read_text("utf-8"))
        owner = Owner(record["issuer"], record["sub"], record["username"])
        return owner, str(record["id"])
    except (OSError, ValueError, KeyError, TypeError, CredentialError):
        return None


async def mint_app_credential(layout: DemoLayout, key_text: str, owner: Owner) -> tuple[str, str]:
    """A new app credential of ``owner``, revoking the one the previous run printed.

    The previous owner may differ (another issuer port), so its record is kept in the demo
    directory rather than looked up by the current owner.
    """
    cipher = SecretCipher([EncryptionKey.from_text(key_text)])
    try:
        store = await SqliteCredentialStore.open(layout.state / "credentials.sqlite3", cipher)
        async with store:
            previous = _printed_before(layout.printed_credential)
            if previous is not None:
                with contextlib.suppress(CredentialNotFound):
                    await store.revoke(*previous)
            new = await store.create(owner, description=CREDENTIAL_DESCRIPTION)
    except CredentialError as exc:
        raise DemoError(f"cannot mint the demo app credential: {exc}") from exc
    record = {"issuer": owner.issuer, "sub": owner.sub, "username": owner.username}
    layout.printed_credential.write_text(json.dumps({**record, "id": new.id}), "utf-8")
    return new.access_key_id, new.secret_access_key


class _IssuerServer(uvicorn.Server):
    """uvicorn for the dev issuer; signals are the demo's (:meth:`Demo.run`), not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Demo:
    """One run of the demo; see the module docstring."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.layout = DemoLayout(options.base.resolve())
        self.as_root = os.geteuid() == 0
        self.population = population_for(os.geteuid())
        self._stop = asyncio.Event()

    def _prepare_files(self, endpoints: Endpoints) -> tuple[str, str]:
        layout = self.layout
        layout.base.mkdir(parents=True, exist_ok=True)
        os.chmod(layout.base, 0o711)  # noqa: S103 (users' servers pass through to storage/)
        tree = create_sample_tree(layout.storage, self.population, as_root=self.as_root)
        homes = {u.username: str(tree.home_of(u.username)) for u in self.population.users}
        directory = static_directory(self.population, homes)
        layout.directory.write_text(yaml.safe_dump(directory, sort_keys=False), "utf-8")
        config = serve_config(layout, endpoints, self.population)
        layout.config.write_text(
            "# Generated by kubepie demo; secrets come from KUBEPIE_* variables.\n"
            + yaml.safe_dump(config, sort_keys=False),
            "utf-8",
        )
        client_secret = os.urandom(32).hex()
        return client_secret, _secret_file(layout.encryption_key)

    async def run(self) -> int:
        options, layout = self.options, self.layout
        port = pick_port(options.port, 8080, set())
        s3_port = pick_port(options.s3_port, 9000, {port})
        issuer_sock = bind_loopback(HOST, pick_port(options.issuer_port, 8090, {port, s3_port}))
        endpoints = Endpoints(HOST, port, s3_port, issuer_sock.getsockname()[1])
        client_secret, key_text = self._prepare_files(endpoints)
        signing_key = SigningKey.load_or_create(layout.issuer_key)
        minter = TokenMinter(signing_key, endpoints.issuer, AUDIENCE)
        client = Client(
            CLIENT_ID,
            client_secret,
            (endpoints.redirect_uri,),
            (endpoints.url, f"{endpoints.url}/"),
        )
        issuer = DevIssuer(
            endpoints.issuer, self.population, {CLIENT_ID: client}, minter, GrantStore()
        )
        server = _IssuerServer(
            uvicorn.Config(issuer.app(), log_level="warning", lifespan="off", access_log=False)
        )
        issuer_task = asyncio.create_task(server.serve(sockets=[issuer_sock]))
        log_file = layout.base / "serve.log"
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        child: asyncio.subprocess.Process | None = None
        log.info("starting kubepie serve at %s (log: %s)", endpoints.url, log_file)
        try:
            with log_file.open("ab") as log_stream:
                child = await asyncio.create_subprocess_exec(
                    *options.serve_command,
                    "--config",
                    str(layout.config),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_stream,
                    stderr=asyncio.subprocess.STDOUT,
                    env={**os.environ, **serve_environment(client_secret, key_text)},
                )
            healthy = await _wait_healthy(
                endpoints.url, child, options.startup_timeout, log_file, self._stop
            )
            if not healthy:
                print("kubepie demo: stopped before the router was up", flush=True)
                return 0
            print(await self._banner(endpoints, minter, key_text, log_file), flush=True)
            return await self._wait(child, log_file)
        finally:
            await _stop_child(child)
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(issuer_task, 5)

    async def _banner(
        self, endpoints: Endpoints, minter: TokenMinter, key_text: str, log_file: Path
    ) -> str:
        user = self.population.users[0]
        owner = Owner(endpoints.issuer, user.username, user.username)
        key_id, secret = await mint_app_credential(self.layout, key_text, owner)
        token = minter.access_token(
            user, CLIENT_ID, ("openid", "profile", "email"), lifetime=TOKEN_HOURS * 3600
        )
        return render(
            BannerInfo(
                endpoints=endpoints,
                population=self.population,
                storage=str(self.layout.storage),
                log_file=str(log_file),
                user=user.username,
                token=token,
                token_hours=TOKEN_HOURS,
                access_key_id=key_id,
                secret_access_key=secret,
                python=sys.executable,
            )
        )

    async def _wait(self, child: asyncio.subprocess.Process, log_file: Path) -> int:
        stop = asyncio.create_task(self._stop.wait())
        exited = asyncio.create_task(child.wait())
        await asyncio.wait({stop, exited}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if exited.done():
            print(
                f"kubepie demo: the router exited ({child.returncode}):\n{_tail(log_file)}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        exited.cancel()
        print("kubepie demo: stopping", flush=True)
        return 0


async def _stop_child(child: asyncio.subprocess.Process | None) -> None:
    if child is None or child.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(child.wait(), 15)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()


def run_demo(options: DemoOptions) -> int:
    """Run the demo until SIGINT/SIGTERM; the exit status of ``kubepie demo``."""
    try:
        return asyncio.run(Demo(options).run())
    except DemoError as exc:
        print(f"kubepie demo: error: {exc}", file=sys.stderr)
        return 2
