"""Pod manifests built by the real KubeSpawner with the hooks the chart's extraConfig installs.

The ``hub.extraConfig`` snippets of ``charts/jupyterhub/values.yaml`` are executed against a
real traitlets config (as z2jh's ``jupyterhub_config.py`` does), so the values cannot drift
from the code. KubeSpawner needs a kubeconfig but no cluster: it points at a closed port. The
manifests are validated with ``kubernetes-validate --strict`` against the upstream schemas.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from jupyterhub import orm
from jupyterhub.objects import Hub
from jupyterhub.user import User
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner
from tornado import web
from traitlets.config import Config

from hubintegration.hooks import KubePieHooks
from hubintegration.podspec import STARTUP_WRAPPER
from tests.fixtures.slapd import Slapd

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: jhub}}]
current-context: none
"""

CLAIMS = {
    "alice": {
        "uid": 10001,
        "gid": 10001,
        "gids": [10001, 20001, 20002],
        "groups": ["beamline-x", "physics"],
    },
    "bob": {"uid": 10002, "gid": 10002, "gids": [10002, 20001], "groups": ["physics"]},
    "dave": {"uid": 10004, "gid": 10004, "gids": [10004], "groups": []},
    "svc": {"uid": 500, "gid": 500, "gids": [500], "groups": []},
    "nouid": {"gid": 10005, "gids": [10005], "groups": []},
    "rootuser": {"uid": 0, "gid": 0, "gids": [0], "groups": []},
}


def _z2jh_config(values: dict[str, Any]) -> Config:
    """What z2jh's jupyterhub_config.py does with our values, then our extraConfig."""
    c = Config()
    hub = values["hub"]
    c.JupyterHub.load_roles = [{"name": k, **v} for k, v in hub["loadRoles"].items()]
    c.JupyterHub.services = [{"name": k, **v} for k, v in hub["services"].items()]
    for section, traits in hub["config"].items():
        for trait, value in traits.items():
            setattr(c[section], trait, value)
    c.KubeSpawner.extra_containers = values["singleuser"]["extraContainers"]
    c.KubeSpawner.cmd = [values["singleuser"]["cmd"]]
    z2jh = types.ModuleType("z2jh")

    def get_config(key: str, default: Any = None) -> Any:
        node: Any = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    z2jh.get_config = get_config  # type: ignore[attr-defined]
    sys.modules["z2jh"] = z2jh
    try:
        for name, snippet in sorted(hub["extraConfig"].items()):
            exec(compile(snippet, f"hub.extraConfig.{name}", "exec"), {"c": c})  # noqa: S102
    finally:
        del sys.modules["z2jh"]
    return c


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(KUBECONFIG)
    mp = pytest.MonkeyPatch()
    mp.setenv("KUBECONFIG", str(path))
    # kubernetes_asyncio reads $KUBECONFIG once, at import
    mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def hub_config(values: dict[str, Any]) -> Config:
    return _z2jh_config(values)


@pytest.fixture(scope="module")
def db(hub_config: Config) -> Any:
    """A real Hub database with the users, groups and roles of the values and the population."""
    session = orm.new_session_factory("sqlite://")()
    session.add(orm.OAuthClient(identifier="jupyterhub"))
    users = {name: orm.User(name=name) for name in (*CLAIMS, "erin", "carol")}
    session.add_all(users.values())
    groups = {
        "physics": orm.Group(name="physics", users=[users["alice"], users["bob"]]),
        "beamline-x": orm.Group(name="beamline-x", users=[users["alice"]]),
    }
    session.add_all(groups.values())
    for spec in hub_config.JupyterHub.load_roles:
        role = orm.Role(name=spec["name"], scopes=spec.get("scopes", []))
        role.users = [users[u] for u in spec.get("users", [])]
        role.groups = [groups[g] for g in spec.get("groups", [])]
        for name in spec.get("services", []):
            service = orm.Service(name=name)
            session.add(service)
            role.services.append(service)
        session.add(role)
    session.commit()
    return session


async def _spawner(
    name: str, options: dict[str, Any], hub_config: Config, db: Any, kubeconfig: Path
) -> KubeSpawner:
    orm_user = db.query(orm.User).filter_by(name=name).one()
    user = User(orm_user, settings={}, db=db)
    if name in CLAIMS:
        await user.save_auth_state({"oauth_user": {"preferred_username": name, **CLAIMS[name]}})
    hub = Hub(ip="hub", port=8081, base_url="/hub/")
    spawner = KubeSpawner(user=user, hub=hub, config=hub_config, orm_spawner=orm.Spawner(name=""))
    spawner.user_options = options
    return spawner


async def _manifest(spawner: KubeSpawner) -> dict[str, Any]:
    """What ``KubeSpawner._start`` does up to the API call: hooks, profile, manifest."""
    await spawner.run_pre_spawn_hook()
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    pod = await spawner.modify_pod_hook(spawner, pod)
    manifest: dict[str, Any] = spawner.api.api_client.sanitize_for_serialization(pod)
    return manifest


def _container(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in manifest["spec"]["containers"] if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_hub_config_names_real_traits(values: dict[str, Any]) -> None:
    from jupyterhub.app import JupyterHub
    from oauthenticator.generic import GenericOAuthenticator

    classes = {
        "JupyterHub": JupyterHub,
        "Authenticator": GenericOAuthenticator,
        "GenericOAuthenticator": GenericOAuthenticator,
    }
    for section, traits in values["hub"]["config"].items():
        known = set(classes[section].class_trait_names(config=True))
        assert set(traits) <= known, (section, set(traits) - known)


def test_extra_config_installs_the_hooks(hub_config: Config, values: dict[str, Any]) -> None:
    hooks = hub_config.Spawner.pre_spawn_hook.__self__
    assert isinstance(hooks, KubePieHooks)
    assert hub_config.KubeSpawner.modify_pod_hook.__self__ is hooks
    assert hub_config.KubeSpawner.profile_list.__self__ is hooks
    assert hub_config.Authenticator.enable_auth_state is True
    # the chart declares the sidecar service and its role; install() does not add them twice
    services = [s["name"] for s in hub_config.JupyterHub.services]
    assert services.count("kubepie-sidecars") == 1
    roles = [r["name"] for r in hub_config.JupyterHub.load_roles]
    assert roles.count("kubepie-sidecars") == 1
    extension = values["singleuser"]["extraFiles"]["kubepie-status-extension"]["data"]
    for module in extension["ServerApp"]["jpserver_extensions"]:
        assert importlib.import_module(module)._jupyter_server_extension_points()
    wrapper = values["singleuser"]["extraFiles"]["kubepie-start"]
    assert wrapper["stringData"] == STARTUP_WRAPPER
    assert wrapper["mountPath"] == values["custom"]["kubepie"]["startup_wrapper"]


async def test_alice_on_a_shared_gpu(
    hub_config: Config, db: Any, kubeconfig: Path, crypt_key: str
) -> None:
    spawner = await _spawner(
        "alice", {"profile": "beamline", "compute": "a100_shared"}, hub_config, db, kubeconfig
    )
    manifest = await _manifest(spawner)
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    spec = manifest["spec"]
    assert spec["securityContext"] == {
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "supplementalGroups": [10001, 20001, 20002],
        "runAsNonRoot": True,
    }
    notebook = _container(manifest, "notebook")
    assert notebook["securityContext"]["allowPrivilegeEscalation"] is False
    assert notebook["command"] == ["/bin/sh", "/opt/kubepie/start.sh"]
    assert notebook["args"][0] == "jupyterhub-singleuser"
    env = _env(notebook)
    assert (env["HOME"], env["USER"], env["NB_UID"]) == ("/home/alice", "alice", "10001")
    assert env["BEARER_TOKEN_FILE"] == "/run/kubepie-token/bt_u10001"
    assert notebook["resources"]["limits"]["jupyterhub/a100-shared"] == "4"
    assert notebook["resources"]["requests"]["jupyterhub/a100-shared"] == "4"
    assert notebook["resources"]["limits"]["memory"] == "107374182400"
    assert manifest["metadata"]["annotations"]["gpu-mem-limit.jupyterhub/a100-shared"] == "80"
    assert spec["nodeSelector"] == {"kubepie.io/node-type": "a100"}
    mounts = {m["mountPath"]: m for m in notebook["volumeMounts"]}
    assert mounts["/etc/passwd"]["subPath"] == "passwd"
    assert mounts["/etc/group"]["subPath"] == "group"
    for path in ("/home/alice", "/data", "/group/beamline-x", "/group/physics"):
        assert path in mounts
    assert mounts["/data"]["readOnly"] is True
    for path in ("/proc/cpuinfo", "/proc/meminfo", "/proc/uptime", "/sys/devices/system/cpu"):
        assert mounts[path]["readOnly"] is True
    assert mounts["/run/kubepie-token"]["readOnly"] is True
    # no walltime for a shared instance: the sidecar is removed; the token helper stays.
    names = [c["name"] for c in spec["containers"]]
    assert names == ["notebook", "kubepie-token-helper"]
    helper = _container(manifest, "kubepie-token-helper")
    helper_env = _env(helper)
    assert helper_env["KUBEPIE_USER"] == "alice"
    assert helper_env["KUBEPIE_CLIENT_SECRET"] == {
        "secretKeyRef": {"name": "kubepie-oidc-client", "key": "client-secret"}
    }
    assert "KUBEPIE_HUB_TOKEN" not in env
    assert "KUBEPIE_CLIENT_SECRET" not in env
    assert helper["securityContext"]["runAsUser"] == 10001


async def test_bob_with_walltime_gets_a_scoped_stop_token(
    hub_config: Config, db: Any, kubeconfig: Path, crypt_key: str
) -> None:
    spawner = await _spawner(
        "bob", {"profile": "common", "compute": "a100_10g"}, hub_config, db, kubeconfig
    )
    manifest = await _manifest(spawner)
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    assert "gpu-mem-limit.jupyterhub/a100-10g" not in manifest["metadata"]["annotations"]
    walltime = _container(manifest, "kubepie-walltime")
    env = _env(walltime)
    assert env["KUBEPIE_WALLTIME_TOTAL"] == str(720 * 60)
    assert walltime["securityContext"]["runAsUser"] == 65534
    token = orm.APIToken.find(db, env["KUBEPIE_HUB_TOKEN"])
    assert token is not None
    assert token.scopes == ["delete:servers!server=bob/"]
    helper = orm.APIToken.find(
        db, _env(_container(manifest, "kubepie-token-helper"))["KUBEPIE_HUB_TOKEN"]
    )
    assert helper is not None
    assert sorted(helper.scopes) == ["admin:auth_state!user=bob", "read:users!user=bob"]
    spawner.run_post_stop_hook()
    assert orm.APIToken.find(db, env["KUBEPIE_HUB_TOKEN"]) is None


async def test_dave_on_cpu_small_without_groups(
    hub_config: Config, db: Any, kubeconfig: Path, crypt_key: str
) -> None:
    spawner = await _spawner("dave", {"profile": "arc"}, hub_config, db, kubeconfig)
    manifest = await _manifest(spawner)
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    assert manifest["spec"]["securityContext"]["supplementalGroups"] == [10004]
    assert (
        manifest["spec"]["containers"][0]["image"] == "quay.io/jupyter/minimal-notebook:2024-10-07"
    )
    assert "nodeSelector" not in manifest["spec"] or not manifest["spec"]["nodeSelector"]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("svc", {}, "svc cannot run a notebook: uid is below the minimum uid 1000"),
        ("nouid", {}, "token has no 'uid' claim"),
        ("erin", {}, "no login data"),
        ("rootuser", {}, "uid 0 is never mapped"),
        ("bob", {"profile": "common", "compute": "a100_20g"}, "'a100_20g' is not available to bob"),
        ("dave", {"profile": "beamline"}, "profile 'beamline' is not available to dave"),
    ],
)
async def test_refused_at_spawn_with_a_reason(
    name: str,
    options: dict[str, Any],
    message: str,
    hub_config: Config,
    db: Any,
    kubeconfig: Path,
    crypt_key: str,
) -> None:
    spawner = await _spawner(name, options, hub_config, db, kubeconfig)
    with pytest.raises(web.HTTPError) as refused:
        await spawner.run_pre_spawn_hook()
    assert refused.value.status_code == 403
    assert message in str(refused.value)


async def test_profile_list_callable_uses_hub_roles_and_groups(
    hub_config: Config, db: Any, kubeconfig: Path, crypt_key: str
) -> None:
    alice = await _spawner("alice", {}, hub_config, db, kubeconfig)
    erin = await _spawner("erin", {}, hub_config, db, kubeconfig)
    alice_list = await alice.profile_list(alice)
    # role a100-20g comes to alice through her group beamline-x (hub.loadRoles)
    common = alice_list[0]["profile_options"]["compute"]["choices"]
    assert "a100_20g" in common
    assert [p["slug"] for p in await erin.profile_list(erin)] == ["common", "arc"]


@pytest.fixture(scope="module")
def ldap_config(values: dict[str, Any], slapd: Slapd) -> Iterator[Config]:
    custom = dict(values["custom"])
    claims = {
        "source": "ldap",
        "ldap": {
            "urls": [slapd.url],
            "user_base": slapd.user_base,
            "group_base": slapd.group_base,
            "bind_dn": slapd.bind_dn,
        },
    }
    custom["kubepie"] = {**custom["kubepie"], "claims": claims}
    mp = pytest.MonkeyPatch()
    mp.setenv("KUBEPIE_LDAP_BIND_PASSWORD", slapd.bind_password)
    yield _z2jh_config({**values, "custom": custom})
    mp.undo()


async def test_identity_from_ldap_by_hub_username(
    ldap_config: Config, db: Any, kubeconfig: Path, crypt_key: str, slapd: Slapd
) -> None:
    carol = await _spawner("carol", {"profile": "arc"}, ldap_config, db, kubeconfig)
    manifest = await _manifest(carol)
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    assert manifest["spec"]["securityContext"]["runAsUser"] == 10003
    assert manifest["spec"]["securityContext"]["supplementalGroups"] == [10003, 20002]
    mounts = [m["mountPath"] for m in _container(manifest, "notebook")["volumeMounts"]]
    assert "/group/beamline-x" in mounts
    erin = await _spawner("erin", {}, ldap_config, db, kubeconfig)
    with pytest.raises(web.HTTPError) as unknown:
        await erin.run_pre_spawn_hook()
    assert unknown.value.status_code == 403
    assert "not in the directory" in str(unknown.value)
    bob = await _spawner("bob", {}, ldap_config, db, kubeconfig)
    with slapd.stopped(), pytest.raises(web.HTTPError) as down:
        await bob.run_pre_spawn_hook()
    assert down.value.status_code == 503
    assert slapd.bind_password not in str(down.value)
