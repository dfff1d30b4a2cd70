"""The one call a z2jh ``hub.extraConfig`` makes: ``install(c, settings)``.

This is the only module that touches JupyterHub and KubeSpawner objects. It wires:

* ``KubeSpawner.profile_list``: a callable that expands the compute-instance profiles for the
  spawning user's Hub roles and groups (:mod:`hubintegration.profiles`);
* ``Spawner.pre_spawn_hook``: re-checks the requested profile / instance / image (form or REST
  API), maps ``auth_state`` to a POSIX identity, fixes the walltime deadline and issues the
  sidecar tokens; any refusal is an HTTP 403 whose message says why;
* ``KubeSpawner.modify_pod_hook``: applies :func:`hubintegration.podspec.apply`;
* ``Spawner.post_stop_hook``: revokes the sidecar tokens.

Sidecar tokens are owned by a Hub service (``kubepie-sidecars``) that holds the broad scopes;
each token is narrowed to one server or one user: ``delete:servers!server=<user>/<name>`` for
the walltime sidecar, ``admin:auth_state!user=<user>`` and ``read:users!user=<user>`` for the
token helper. install() adds that service and its role to the Hub configuration.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from hubintegration import podspec, profiles
from hubintegration.authstate import directory_of, resolve_identity
from hubintegration.errors import SettingsError, SpawnRefused
from hubintegration.profiles import Principal
from hubintegration.settings import HubSettings, load_settings
from identity.directory import Directory
from identity.storage import resolve_mounts

log = logging.getLogger(__name__)

#: What the sidecar service may do at most; each token it issues is narrowed from this.
SIDECAR_SCOPES = ("delete:servers", "admin:auth_state", "read:users")
#: Lifetime of sidecar tokens of a server without walltime (seconds); revoked at stop anyway.
TOKEN_LIFETIME_S = 7 * 24 * 3600


def _key(spawner: Any) -> tuple[str, str]:
    return (spawner.user.name, spawner.name or "")


def _note(user: str, server: str) -> str:
    """The note of a server's sidecar tokens: how they are found again to be revoked."""
    return f"kubepie-sidecars:{user}/{server}"


def _refuse(error: SpawnRefused) -> Exception:
    from tornado import web

    return web.HTTPError(error.status, str(error).replace("%", "%%"))


class KubePieHooks:
    """The hook callables, bound to one settings object. ``clock`` gives epoch seconds."""

    def __init__(
        self,
        settings: HubSettings,
        clock: Callable[[], float] = time.time,
        directory: Directory | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._directory = directory
        self._plans: dict[tuple[str, str], podspec.PodPlan] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> KubePieHooks:
        # traitlets deep-copies config values into each spawner; every hook must keep
        # talking to this one object (the plans issued at pre-spawn are read at pod build).
        return self

    # -- who is spawning -------------------------------------------------------------------

    def principal(self, spawner: Any) -> Principal:
        from jupyterhub.roles import get_roles_for

        orm_user = spawner.user.orm_user
        roles = frozenset(role.name for role in get_roles_for(orm_user))
        groups = frozenset(group.name for group in orm_user.groups)
        return Principal(spawner.user.name, roles, groups)

    async def profile_list(self, spawner: Any) -> list[dict[str, Any]]:
        return profiles.profile_list(self.settings, self.principal(spawner))

    # -- spawn -----------------------------------------------------------------------------

    def plan_for(self, spawner: Any) -> podspec.PodPlan | None:
        """The pod plan fixed at this server's spawn (``None`` before or after)."""
        return self._plans.get(_key(spawner))

    async def pre_spawn_hook(self, spawner: Any) -> None:
        try:
            selection = profiles.select(
                self.settings, self.principal(spawner), dict(spawner.user_options or {})
            )
            auth_state = await spawner.user.get_auth_state()
            identity = await resolve_identity(
                spawner.user.name, auth_state, self.settings.kubepie.claims, self._directory
            )
        except SpawnRefused as error:
            log.warning("refusing spawn of %s/%s: %s", *_key(spawner), error)
            raise _refuse(error) from error
        self._revoke(spawner)
        cfg = self.settings.kubepie
        user, server = _key(spawner)
        note = _note(user, server)
        walltime = None
        minutes = selection.instance.walltime_minutes
        lifetime = TOKEN_LIFETIME_S
        if cfg.walltime.enabled and minutes:
            total = round(minutes * 60)
            lifetime = total + 3600
            token = self._new_token(
                spawner, [f"delete:servers!server={user}/{server}"], note, lifetime
            )
            walltime = podspec.Walltime(self._clock() + total, total, token)
        helper_token = None
        if cfg.token_helper.enabled:
            scopes = [f"admin:auth_state!user={user}", f"read:users!user={user}"]
            helper_token = self._new_token(spawner, scopes, note, lifetime)
        plan = podspec.PodPlan(
            identity=identity,
            server_name=server,
            mounts=resolve_mounts(cfg.mount_specs(), identity),
            settings=cfg,
            hub_api_url=spawner.hub.api_url,
            walltime=walltime,
            helper_token=helper_token,
        )
        self._plans[(user, server)] = plan

    def _new_token(self, spawner: Any, scopes: list[str], note: str, lifetime: int) -> str:
        from jupyterhub import orm

        db = spawner.user.db
        service = orm.Service.find(db, self.settings.kubepie.sidecar_service)
        if service is None:
            raise _refuse(SpawnRefused("the sidecar service is not configured in the Hub"))
        token: str = service.new_api_token(scopes=scopes, note=note, expires_in=lifetime)
        db.commit()
        return token

    async def modify_pod_hook(self, spawner: Any, pod: Any) -> Any:
        plan = self._plans.get(_key(spawner))
        if plan is None:
            raise _refuse(SpawnRefused("the server was not prepared by the pre-spawn checks"))
        client = spawner.api.api_client
        manifest = podspec.apply(client.sanitize_for_serialization(pod), plan)
        return client.deserialize(SimpleNamespace(data=json.dumps(manifest)), "V1Pod")

    def post_stop_hook(self, spawner: Any) -> None:
        self._revoke(spawner)

    def _revoke(self, spawner: Any) -> None:
        """Delete this server's sidecar tokens (also those issued before a Hub restart)."""
        from jupyterhub import orm

        self._plans.pop(_key(spawner), None)
        db = spawner.user.db
        service = orm.Service.find(db, self.settings.kubepie.sidecar_service)
        if service is None:
            return
        note = _note(*_key(spawner))
        for token in list(service.api_tokens):
            if token.note == note:
                db.delete(token)
        db.commit()


def _ensure_service(c: Any, name: str) -> None:
    hub = c.JupyterHub
    services = list(hub.services) if "services" in hub else []
    if not any(s.get("name") == name for s in services):
        services.append({"name": name, "display": False})
    hub.services = services
    roles = list(hub.load_roles) if "load_roles" in hub else []
    if not any(r.get("name") == name for r in roles):
        roles.append({"name": name, "scopes": list(SIDECAR_SCOPES), "services": [name]})
    hub.load_roles = roles


def install(c: Any, settings: HubSettings | Mapping[str, Any]) -> KubePieHooks:
    """Wire the hooks into the Hub configuration ``c``; ``settings`` may be the raw ``custom``
    values. Returns the hooks object (its ``plan_for`` is what a non-Kubernetes spawner uses)."""
    if not isinstance(settings, HubSettings):
        settings = load_settings(settings)
    if not settings.profiles:
        raise SettingsError("custom.profiles: at least one profile is needed")
    hooks = KubePieHooks(settings, directory=directory_of(settings.kubepie.claims))
    c.Authenticator.enable_auth_state = True
    c.KubeSpawner.profile_list = hooks.profile_list
    c.KubeSpawner.modify_pod_hook = hooks.modify_pod_hook
    c.Spawner.pre_spawn_hook = hooks.pre_spawn_hook
    c.Spawner.post_stop_hook = hooks.post_stop_hook
    _ensure_service(c, settings.kubepie.sidecar_service)
    return hooks
