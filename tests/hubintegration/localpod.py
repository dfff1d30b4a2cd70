"""A spawner for the live-Hub tests that runs a "pod" as local processes.

The notebook is :mod:`tests.hubintegration.tinyserver`; the walltime and token-helper sidecars
are the real console scripts, started with exactly the environment the pod hook gives those
containers (:func:`hubintegration.podspec.walltime_env` / ``token_helper_env``), with loopback
ports and a token directory of their own. Each "pod" writes ``pod-<user>-<server>.json`` in
``workdir`` (ports, token file, sidecar environments) for the test to inspect. The pod plan
comes from the hooks object that ``install(c, ...)`` returned in the Hub's config.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Any as AnyTrait
from traitlets import Unicode

from hubintegration import podspec
from tests.support import free_port

BIN = Path(sys.executable).parent


async def _options_form(spawner: LocalPodSpawner) -> str:
    """The choices the profile_list callable offers this user (what KubeSpawner would render)."""
    entries = await spawner.kubepie.profile_list(spawner)
    lines = []
    for entry in entries:
        for key, choice in entry["profile_options"]["compute"]["choices"].items():
            value = f"{entry['slug']}/{key}"
            lines.append(f'<option value="{value}">{choice["display_name"]}</option>')
    return "<select name='choice'>" + "".join(lines) + "</select>"


class LocalPodSpawner(SimpleLocalProcessSpawner):  # type: ignore[misc]
    kubepie = AnyTrait(config=True, help="the KubePieHooks object install() returned")
    workdir = Unicode(config=True)
    token_endpoint = Unicode(config=True)
    client_id = Unicode(config=True)
    client_secret = Unicode(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options_form = _options_form
        self.cmd = [sys.executable, "-m", "tests.hubintegration.tinyserver"]
        self._sidecars: list[subprocess.Popen[bytes]] = []

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        plan = self.kubepie.plan_for(self)
        if plan is not None:
            env.update(podspec.user_env(plan))
            env.update(getattr(self, "_pod_env", {}))
        return env

    def _sidecar(self, name: str, env: dict[str, str], log: Path) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        full.update(env)
        with log.open("ab") as out:
            self._sidecars.append(
                subprocess.Popen([str(BIN / name)], env=full, stdout=out, stderr=subprocess.STDOUT)
            )

    async def start(self) -> Any:
        plan = self.kubepie.plan_for(self)
        server = self.name or "default"
        pod = Path(self.workdir) / f"pod-{self.user.name}-{server}"
        pod.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {}
        self._pod_env: dict[str, str] = {}
        if plan is not None and plan.walltime is not None:
            env = podspec.walltime_env(plan, plan.walltime)
            env["KUBEPIE_WALLTIME_PORT"] = str(free_port())
            self._sidecar("kubepie-walltime", env, pod / "walltime.log")
            info["walltime_env"] = env
            self._pod_env["KUBEPIE_WALLTIME_URL"] = (
                f"http://127.0.0.1:{env['KUBEPIE_WALLTIME_PORT']}/"
            )
        if plan is not None and plan.helper_token is not None:
            token_dir = pod / "token"
            token_dir.mkdir(exist_ok=True)
            env = podspec.token_helper_env(plan, plan.helper_token)
            token_file = str(token_dir / Path(env["KUBEPIE_TOKEN_FILE"]).name)
            env |= {
                "KUBEPIE_TOKEN_FILE": token_file,
                "KUBEPIE_TOKEN_PORT": str(free_port()),
                "KUBEPIE_TOKEN_ENDPOINT": self.token_endpoint,
                "KUBEPIE_CLIENT_ID": self.client_id,
                "KUBEPIE_CLIENT_SECRET": self.client_secret,
            }
            self._sidecar("kubepie-token-helper", env, pod / "token-helper.log")
            info["token_env"] = env
            self._pod_env["BEARER_TOKEN_FILE"] = token_file
            self._pod_env["KUBEPIE_TOKEN_URL"] = (
                f"http://127.0.0.1:{env['KUBEPIE_TOKEN_PORT']}/token"
            )
        info["token_dir"] = str(pod / "token")
        (Path(self.workdir) / f"pod-{self.user.name}-{server}.json").write_text(json.dumps(info))
        return await super().start()

    async def stop(self, now: bool = False) -> None:
        for process in self._sidecars:
            process.terminate()
        for process in self._sidecars:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
        self._sidecars = []
        await super().stop(now=now)
