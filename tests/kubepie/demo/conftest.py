"""The dev issuer of ``kubepie demo`` served by uvicorn in the test loop, and a login helper."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn

from kubepie.demo.accounts import DEMO_USERS
from kubepie.demo.config import AUDIENCE, CLIENT_ID
from kubepie.demo.grants import Client, GrantStore, s256
from kubepie.demo.issuer import DevIssuer, bind_loopback
from kubepie.demo.keys import SigningKey
from kubepie.demo.tokens import TokenMinter

REDIRECT = "http://127.0.0.1:9/callback"
SECRET = "router-secret-" + "x" * 20


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningIssuer:
    issuer: DevIssuer
    url: str
    http: httpx.AsyncClient

    async def authorize(
        self,
        username: str = "alice",
        password: str | None = None,
        *,
        verifier: str | None = None,
        nonce: str = "n-0S6",
        state: str = "st-1",
    ) -> tuple[str, str]:
        """Log in through the form; (code, verifier)."""
        verifier = verifier or secrets.token_urlsafe(48)
        params = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid profile offline_access",
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        form = await self.http.get(f"{self.url}/authorize", params=params)
        assert form.status_code == 200, form.text
        assert "DEVELOPMENT ISSUER" in form.text
        fields = dict(re.findall(r'type=hidden name=(\w+) value="([^"]*)"', form.text))
        user = DEMO_USERS.get(username)
        fields["username"] = username
        fields["password"] = password if password is not None else (user.password if user else "")
        answer = await self.http.post(f"{self.url}/authorize", data=fields)
        assert answer.status_code == 303, answer.text
        target = urlsplit(answer.headers["location"])
        query = parse_qs(target.query)
        assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
        assert query["state"] == [state]
        assert query["iss"] == [self.url]
        return query["code"][0], verifier

    async def token(self, **form: str) -> httpx.Response:
        return await self.http.post(f"{self.url}/token", data=form, auth=(CLIENT_ID, SECRET))


@pytest.fixture(scope="session")
def issuer_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    path: Path = tmp_path_factory.mktemp("issuer") / "key.pem"
    return SigningKey.load_or_create(path)


@pytest.fixture(scope="session")
async def dev_issuer(issuer_key: SigningKey) -> AsyncIterator[RunningIssuer]:
    sock = bind_loopback("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = Client(CLIENT_ID, SECRET, (REDIRECT,), ("http://127.0.0.1:9/",))
    issuer = DevIssuer(
        url, DEMO_USERS, {CLIENT_ID: client}, TokenMinter(issuer_key, url, AUDIENCE), GrantStore()
    )
    server = _Server(uvicorn.Config(issuer.app(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                await http.get(f"{url}/jwks")
                break
            await asyncio.sleep(0.05)
        yield RunningIssuer(issuer, url, http)
    server.should_exit = True
    await task
