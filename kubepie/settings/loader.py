"""Read the YAML file, apply ``KUBEPIE_*`` environment variables, validate once, name bad keys.

Environment variables: every scalar or list key has one, named after its path —
``oidc.client_secret`` is ``KUBEPIE_OIDC_CLIENT_SECRET``, ``identity.ldap.bind_password`` is
``KUBEPIE_IDENTITY_LDAP_BIND_PASSWORD``; list keys take comma-separated values
(``KUBEPIE_OIDC_AUDIENCES=a,b``). Two more names: ``KUBEPIE_CREDENTIALS_ENCRYPTION_KEY`` sets a
single encryption key, and ``KUBEPIE_LDAP_BIND_PASSWORD`` (the name ``kubepie nss-sync`` reads)
sets ``identity.ldap.bind_password``. A variable wins over the file, so secrets need never be
written in it. The ``mounts`` list is file-only, and the variables of an optional section
(``identity.ldap``) apply only when the file has that section, so a deployment may always set
the bind password whether or not it uses LDAP.

Errors: :class:`ConfigError` lists every bad key as ``key.path: problem`` (with the variable
name when the value came from the environment). Values are never echoed and the pydantic error,
which holds the input, is not chained, so a secret cannot reach a log or a traceback.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from kubepie.settings.errors import ConfigError, ConfigFileError
from kubepie.settings.fields import Frozen, ListenAddress
from kubepie.settings.models import KubePieSettings

ENV_PREFIX = "KUBEPIE_"


@dataclass(frozen=True, slots=True)
class EnvKey:
    """The configuration key an environment variable sets."""

    path: tuple[str, ...]
    #: The key is a list: the variable's value is split on commas.
    many: bool
    #: The optional section the key is in (applied only if the file has it), if any.
    within: tuple[str, ...] | None = None


#: Extra variable names: a single encryption key, without the comma-separated list form; the
#: bind password under the name ``kubepie nss-sync`` reads, so one secret serves both.
_ALIASES = {
    "KUBEPIE_CREDENTIALS_ENCRYPTION_KEY": EnvKey(("credentials", "encryption_keys"), many=False),
    "KUBEPIE_LDAP_BIND_PASSWORD": EnvKey(
        ("identity", "ldap", "bind_password"), many=False, within=("identity", "ldap")
    ),
}


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return (annotation,)


def _section(annotation: Any) -> type[Frozen] | None:
    for member in _members(annotation):
        if (
            isinstance(member, type)
            and issubclass(member, Frozen)
            and not issubclass(member, ListenAddress)
        ):
            return member
    return None


def _list_item(annotation: Any) -> Any | None:
    """The item type if ``annotation`` is a ``tuple[X, ...]`` (possibly optional), else None."""
    for member in _members(annotation):
        if typing.get_origin(member) is tuple:
            return typing.get_args(member)[0]
    return None


def env_keys(
    model: type[BaseModel] = KubePieSettings,
    prefix: tuple[str, ...] = (),
    within: tuple[str, ...] | None = None,
) -> dict[str, EnvKey]:
    """Every environment variable that sets a key of ``model``, by name."""
    table: dict[str, EnvKey] = {}
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        section = _section(info.annotation)
        if section is not None:
            optional = not info.is_required() and info.default is None
            table.update(env_keys(section, path, path if optional and within is None else within))
            continue
        item = _list_item(info.annotation)
        if item is not None and _section(item) is not None:
            continue  # a list of sections (mounts): file only
        table[ENV_PREFIX + "_".join(path).upper()] = EnvKey(path, item is not None, within)
    return table


def _has(data: dict[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, dict) or node.get(part) is None:
            return False
        node = node[part]
    return True


def _set(data: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            return  # the file has a non-mapping here; validation reports it
        node = child
    node[path[-1]] = value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value


def apply_environment(
    data: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """``data`` with ``KUBEPIE_*`` variables applied, and which variable set which key."""
    merged: dict[str, Any] = _copy(dict(data))
    sources: dict[tuple[str, ...], str] = {}
    table = env_keys()
    table.update(_ALIASES)
    for name in sorted(set(table) & set(environ)):
        path, many, within = table[name].path, table[name].many, table[name].within
        if within is not None and not _has(merged, within):
            continue
        if path in sources:
            raise ConfigError("the environment", [f"set only one of {sources[path]} and {name}"])
        raw = environ[name]
        value: object = [part.strip() for part in raw.split(",") if part.strip()] if many else raw
        if path == ("credentials", "encryption_keys") and not many:
            value = [raw.strip()]
        _set(merged, path, value)
        sources[path] = name
    return merged, sources


def _model_at(path: tuple[str | int, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = KubePieSettings
    for part in path:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        section = _section(info.annotation)
        item = _list_item(info.annotation)
        if section is None and item is not None:
            section = _section(item)
        if section is None:
            return None
        model = section
    return model


def _describe(error: ErrorDetails, sources: Mapping[tuple[str, ...], str]) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "required_with":
        loc = (*loc, str(ctx["field"]))
    message = error["msg"]
    names = tuple(str(part) for part in loc if not isinstance(part, int))
    if kind == "missing":
        message = "field required"
        variables = [n for n, k in {**env_keys(), **_ALIASES}.items() if k.path == names]
        if variables:
            message += f" (in the file or in {' or '.join(variables)})"
    elif kind == "extra_forbidden":
        message = "unknown key"
        parent = _model_at(loc[:-1])
        if parent is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
    else:
        for noise in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(noise)
        message = message[:1].lower() + message[1:]
    for path, variable in sources.items():
        if names[: len(path)] == path:
            message += f" (from {variable})"
    key = ".".join(str(part) for part in loc) or "(top level)"
    return f"{key}: {message}"


def settings_from_mapping(
    data: Mapping[str, Any], environ: Mapping[str, str], source: str = "the given settings"
) -> KubePieSettings:
    """Validate ``data`` (with ``environ`` applied); :class:`ConfigError` names every bad key."""
    merged, sources = apply_environment(data, environ)
    try:
        return KubePieSettings.model_validate(merged)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    # A list whose items are all bad also reports "too short"; the item errors say more.
    bad_items = {
        tuple(e["loc"][:i])
        for e in errors
        for i, part in enumerate(e["loc"])
        if isinstance(part, int)
    }
    problems = [
        _describe(error, sources)
        for error in errors
        if not (error["type"] == "too_short" and tuple(error["loc"]) in bad_items)
    ]
    raise ConfigError(source, problems)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> KubePieSettings:
    """The frozen settings in the YAML file ``path``, with ``KUBEPIE_*`` variables applied.

    ``environ`` defaults to the process environment. Raises :class:`ConfigFileError` when the
    file cannot be read or parsed and :class:`ConfigError` when keys are missing or wrong.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(source, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigFileError(source, ["the file is not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigFileError(source, [f"{where}{problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(source, ["the top level must be a mapping of keys"])
    return settings_from_mapping(data, os.environ if environ is None else environ, source)
