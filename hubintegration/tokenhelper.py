"""The token-helper sidecar (``kubepie-token-helper``): a fresh access token for the notebook.

It reads the user's ``auth_state`` from the Hub (``GET /hub/api/users/<user>`` with a token
scoped to ``admin:auth_state!user=<user>`` and ``read:users!user=<user>``), keeps the refresh
token in its own memory only, refreshes the access token at the issuer ahead of expiry
(oauthenticator's ``refresh_user`` only refreshes after userinfo fails, so the Hub copy cannot
be relied on), and hands out only the access token:

* atomically rewritten in ``KUBEPIE_TOKEN_FILE`` (``bt_u<uid>`` on an in-memory volume the
  notebook mounts read-only: WLCG bearer token discovery via ``BEARER_TOKEN_FILE``);
* ``GET /token`` on loopback: ``{"access_token", "token_type", "expires_at"}``.

If the issuer refuses the refresh token (revoked, rotated by a new login), the helper reads
``auth_state`` again and continues with what the Hub holds now.

Environment: ``KUBEPIE_HUB_API_URL``, ``KUBEPIE_HUB_TOKEN``, ``KUBEPIE_USER``,
``KUBEPIE_TOKEN_FILE``, ``KUBEPIE_TOKEN_PORT``, ``KUBEPIE_TOKEN_ENDPOINT``,
``KUBEPIE_CLIENT_ID``, ``KUBEPIE_CLIENT_SECRET``, ``KUBEPIE_TOKEN_REFRESH_MARGIN`` (seconds).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from hubintegration.errors import HubApiError, IssuerError, SettingsError, SidecarError
from hubintegration.localhttp import serve_json

log = logging.getLogger("kubepie.token-helper")

#: Never wait longer than this between refresh attempts after a failure (seconds).
MAX_BACKOFF_S = 30.0


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise SettingsError(f"{name} is not set")
    return value


@dataclass(frozen=True, slots=True)
class HelperConfig:
    hub_api_url: str
    hub_token: str
    user: str
    token_file: Path
    token_endpoint: str
    client_id: str
    client_secret: str
    refresh_margin_s: float = 60.0
    port: int = 8182
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HelperConfig:
        try:
            margin = float(env.get("KUBEPIE_TOKEN_REFRESH_MARGIN", "60"))
            port = int(env.get("KUBEPIE_TOKEN_PORT", "8182"))
        except ValueError as exc:
            raise SettingsError(f"KUBEPIE_TOKEN_REFRESH_MARGIN / _PORT: {exc}") from exc
        return cls(
            hub_api_url=_required(env, "KUBEPIE_HUB_API_URL").rstrip("/"),
            hub_token=_required(env, "KUBEPIE_HUB_TOKEN"),
            user=_required(env, "KUBEPIE_USER"),
            token_file=Path(_required(env, "KUBEPIE_TOKEN_FILE")),
            token_endpoint=_required(env, "KUBEPIE_TOKEN_ENDPOINT"),
            client_id=_required(env, "KUBEPIE_CLIENT_ID"),
            client_secret=_required(env, "KUBEPIE_CLIENT_SECRET"),
            refresh_margin_s=margin,
            port=port,
        )


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float
    issued_at: float

    def refresh_at(self, margin_s: float) -> float:
        """When to refresh: ``margin_s`` before expiry, but never in the first 3/4 of life."""
        lifetime = max(0.0, self.expires_at - self.issued_at)
        return self.expires_at - min(margin_s, lifetime / 4)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verification (for scheduling only), else ``None``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600) so readers see the old or the new token."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class TokenHelper:
    def __init__(
        self, config: HelperConfig, http: httpx.AsyncClient, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._refresh_token: str | None = None
        self.access: AccessToken | None = None
        self.refreshes = 0

    async def load_auth_state(self) -> None:
        """Take the current tokens from the Hub's ``auth_state`` of this user."""
        cfg = self.config
        try:
            response = await self._http.get(
                f"{cfg.hub_api_url}/users/{quote(cfg.user, safe='')}",
                headers={"Authorization": f"token {cfg.hub_token}"},
            )
        except httpx.HTTPError as exc:
            raise HubApiError(f"the Hub is unreachable: {type(exc).__name__}", 503) from exc
        if response.status_code != 200:
            raise HubApiError("the Hub refused to give the user model", response.status_code)
        auth_state = response.json().get("auth_state")
        if not isinstance(auth_state, dict):
            raise HubApiError("no auth_state in the user model (scope or auth_state off?)", 403)
        refresh = auth_state.get("refresh_token")
        access = auth_state.get("access_token")
        if not refresh:
            raise HubApiError("auth_state holds no refresh token (offline_access?)", 409)
        self._refresh_token = str(refresh)
        if isinstance(access, str) and access:
            now = self._clock()
            expiry = jwt_expiry(access)
            if expiry is not None and expiry > now:
                self.access = AccessToken(access, expiry, min(now, expiry))

    async def _refresh_once(self) -> AccessToken:
        cfg = self.config
        if self._refresh_token is None:
            await self.load_auth_state()
        data = {"grant_type": "refresh_token", "refresh_token": self._refresh_token or ""}
        try:
            response = await self._http.post(
                cfg.token_endpoint, data=data, auth=(cfg.client_id, cfg.client_secret)
            )
        except httpx.HTTPError as exc:
            raise IssuerError(f"the issuer is unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            error = ""
            with contextlib.suppress(ValueError, AttributeError):
                error = str(response.json().get("error", ""))
            raise IssuerError(f"the issuer refused the refresh ({response.status_code} {error})")
        body: dict[str, Any] = response.json()
        now = self._clock()
        value = str(body["access_token"])
        expires_in = body.get("expires_in")
        expiry = now + float(expires_in) if expires_in else (jwt_expiry(value) or now + 60)
        if body.get("refresh_token"):
            self._refresh_token = str(body["refresh_token"])
        return AccessToken(value, expiry, now)

    async def refresh(self) -> AccessToken:
        """A new access token from the issuer; re-reads ``auth_state`` once if refused."""
        try:
            token = await self._refresh_once()
        except IssuerError as first:
            log.warning("refresh failed (%s); reading auth_state again", first)
            await self.load_auth_state()
            token = await self._refresh_once()
        self.access = token
        self.refreshes += 1
        write_atomically(self.config.token_file, token.value)
        log.info("access token refreshed; valid for %.0f s", token.expires_at - token.issued_at)
        return token

    async def _token(self) -> tuple[int, Any]:
        token = self.access
        if token is None or token.expires_at <= self._clock():
            return 503, {"error": "no valid access token yet"}
        return 200, {
            "access_token": token.value,
            "token_type": "Bearer",
            "expires_at": token.expires_at,
        }

    async def keep_fresh(self) -> None:
        """Refresh before every expiry, forever; back off (up to 30 s) after failures."""
        backoff = 1.0
        while True:
            try:
                token = await self.refresh()
            except SidecarError as exc:
                log.warning("could not refresh the access token: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 1.0
            wait = token.refresh_at(self.config.refresh_margin_s) - self._clock()
            await asyncio.sleep(max(wait, 0.5))

    async def run(self) -> None:
        server = await serve_json({"/token": self._token}, self.config.host, self.config.port)
        async with server:
            await self.keep_fresh()


async def _main(config: HelperConfig) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await TokenHelper(config, http).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``kubepie-token-helper``; all settings come from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = HelperConfig.from_env(os.environ)
    except SettingsError as exc:
        log.error("kubepie-token-helper: %s", exc)
        return 2
    asyncio.run(_main(config))
    return 0
