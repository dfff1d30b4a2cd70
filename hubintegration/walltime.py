"""The walltime sidecar (``kubepie-walltime``): stops exactly one server at its deadline.

The absolute deadline is fixed at spawn and given in the container's environment, so a
restarted sidecar keeps it. A loopback JSON endpoint (``GET /``) says elapsed, remaining and
total seconds for the status extension; a warning is logged (and flagged in the JSON)
``warn_before_s`` before the end; at the deadline the server is stopped through the Hub API with
a token scoped to ``delete:servers!server=<user>/<name>`` and nothing more.

Environment (set by the pod hook): ``KUBEPIE_HUB_API_URL``, ``KUBEPIE_HUB_TOKEN``,
``KUBEPIE_USER``, ``KUBEPIE_SERVER_NAME``, ``KUBEPIE_WALLTIME_DEADLINE`` (epoch seconds),
``KUBEPIE_WALLTIME_TOTAL`` (seconds), ``KUBEPIE_WALLTIME_WARN_BEFORE`` (seconds),
``KUBEPIE_WALLTIME_PORT``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from hubintegration.errors import HubApiError, SettingsError
from hubintegration.localhttp import serve_json

log = logging.getLogger("kubepie.walltime")

#: Seconds between attempts when the Hub does not answer the stop request.
RETRY_S = 5.0


def _env(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value and name != "KUBEPIE_SERVER_NAME":
        raise SettingsError(f"{name} is not set")
    return value


def _env_number(env: Mapping[str, str], name: str) -> float:
    try:
        return float(_env(env, name))
    except ValueError as exc:
        raise SettingsError(f"{name} is not a number") from exc


@dataclass(frozen=True, slots=True)
class WalltimeConfig:
    hub_api_url: str
    token: str
    user: str
    server_name: str
    deadline: float
    total_s: int
    warn_before_s: int = 600
    port: int = 8181
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WalltimeConfig:
        return cls(
            hub_api_url=_env(env, "KUBEPIE_HUB_API_URL").rstrip("/"),
            token=_env(env, "KUBEPIE_HUB_TOKEN"),
            user=_env(env, "KUBEPIE_USER"),
            server_name=env.get("KUBEPIE_SERVER_NAME", ""),
            deadline=_env_number(env, "KUBEPIE_WALLTIME_DEADLINE"),
            total_s=int(_env_number(env, "KUBEPIE_WALLTIME_TOTAL")),
            warn_before_s=int(env.get("KUBEPIE_WALLTIME_WARN_BEFORE", "600")),
            port=int(env.get("KUBEPIE_WALLTIME_PORT", "8181")),
        )


def countdown(now: float, deadline: float, total_s: int, warn_before_s: int) -> dict[str, Any]:
    """What the endpoint answers: whole seconds, never negative."""
    remaining = max(0, round(deadline - now))
    return {
        "total_s": total_s,
        "remaining_s": remaining,
        "elapsed_s": max(0, total_s - remaining),
        "deadline": deadline,
        "warning": remaining <= warn_before_s,
    }


def server_path(user: str, server_name: str) -> str:
    """Hub API path of one server: ``/users/<u>/server`` or ``/users/<u>/servers/<name>``."""
    if server_name:
        return f"/users/{quote(user, safe='')}/servers/{quote(server_name, safe='')}"
    return f"/users/{quote(user, safe='')}/server"


class WalltimeSidecar:
    def __init__(
        self,
        config: WalltimeConfig,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self.stopped = False

    def status(self) -> dict[str, Any]:
        cfg = self.config
        body = countdown(self._clock(), cfg.deadline, cfg.total_s, cfg.warn_before_s)
        body |= {"user": cfg.user, "server": cfg.server_name, "stopped": self.stopped}
        return body

    async def _status(self) -> tuple[int, Any]:
        return 200, self.status()

    async def stop_server(self) -> bool:
        """Ask the Hub to stop the server; ``True`` once it is stopping or already gone."""
        cfg = self.config
        url = cfg.hub_api_url + server_path(cfg.user, cfg.server_name)
        try:
            response = await self._http.delete(url, headers={"Authorization": f"token {cfg.token}"})
        except httpx.HTTPError as exc:
            log.warning("could not reach the Hub to stop %s: %s", cfg.user, type(exc).__name__)
            return False
        if response.status_code in (202, 204, 404):
            return True
        if response.status_code == 400 and "not running" in response.text:
            return True
        if response.status_code in (401, 403):
            raise HubApiError("the Hub refused the walltime token", response.status_code)
        log.warning("the Hub answered %s to the stop request", response.status_code)
        return False

    async def _sleep_until(self, when: float) -> None:
        while True:
            left = when - self._clock()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 60.0))

    async def enforce(self) -> None:
        """Warn, wait for the deadline, stop the server (retrying until the Hub agrees)."""
        cfg = self.config
        await self._sleep_until(cfg.deadline - cfg.warn_before_s)
        if self._clock() < cfg.deadline:
            left = round(cfg.deadline - self._clock())
            log.warning("walltime: server of %s stops in %d s", cfg.user, left)
        await self._sleep_until(cfg.deadline)
        log.warning("walltime of %d s reached: stopping the server of %s", cfg.total_s, cfg.user)
        while True:
            if await self.stop_server():
                break
            await asyncio.sleep(RETRY_S)
        self.stopped = True
        log.info("the Hub is stopping the server of %s", cfg.user)

    async def run(self) -> None:
        server = await serve_json({"/": self._status}, self.config.host, self.config.port)
        async with server:
            await self.enforce()
            await server.serve_forever()


async def _main(config: WalltimeConfig) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await WalltimeSidecar(config, http).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``kubepie-walltime``; all settings come from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = WalltimeConfig.from_env(os.environ)
    except SettingsError as exc:
        log.error("kubepie-walltime: %s", exc)
        return 2
    try:
        asyncio.run(_main(config))
    except HubApiError as exc:
        log.error("kubepie-walltime: %s (HTTP %d)", exc, exc.status)
        return 1
    return 0
