"""Value types of the configuration: durations, listen addresses, URLs, encryption keys.

Each is a pure parser wrapped as a pydantic ``Annotated`` type, so a bad value is reported at
its own key. Parsers raise ``ValueError`` with a message that says what is expected; they never
echo the value of a secret.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from kubepie.credentials.cipher import EncryptionKey
from kubepie.credentials.errors import EncryptionKeyError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]*)):(?P<port>\d{1,5})$")
_URL = re.compile(r"^(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?")


class Frozen(BaseModel):
    """Base of every section: immutable, unknown keys refused, field docs from docstrings."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def required_with(field: str, message: str) -> PydanticCustomError:
    """An error for a model validator to raise about one of its fields (reported at that key)."""
    return PydanticCustomError("required_with", message, {"field": field})


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string: ``90``, ``90s``, ``15m``, ``2h``, ``7d``, ``500ms``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '15m'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("a duration is a number of seconds or a string like '15m'")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


#: A duration in seconds, greater than zero; written as a number or as ``15m``, ``2h``, ``7d``.
Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, allow_inf_nan=False)]


def _one_or_many(value: Any) -> Any:
    """One string becomes a one-element list (``url: ldap://a`` or ``url: [ldap://a, ...]``)."""
    return [value] if isinstance(value, str) else value


#: A list that may also be written as one string.
OneOrMany = BeforeValidator(_one_or_many)


def check_http_url(value: str) -> str:
    """An ``https://`` URL (``http://`` only for a loopback host), kept exactly as written."""
    match = _URL.match(value)
    if match is None or "?" in value or "#" in value:
        raise ValueError("must be an http(s) URL without query or fragment")
    if match.group("scheme") == "http" and not _is_loopback(match.group("host").strip("[]")):
        raise ValueError("must use https (http is accepted only for localhost)")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(value: Any) -> Any:
    return check_http_url(value) if isinstance(value, str) else value


def _base_url(value: Any) -> Any:
    return check_http_url(value).rstrip("/") if isinstance(value, str) else value


#: A URL as :func:`check_http_url` accepts it, unchanged (an issuer must match ``iss`` exactly,
#: trailing slash included).
HttpUrl = Annotated[str, BeforeValidator(_url)]
#: A URL as :func:`check_http_url` accepts it, without its trailing slash, for joining paths.
BaseUrl = Annotated[str, BeforeValidator(_base_url)]


class ListenAddress(Frozen):
    """A TCP address to listen on, written ``host:port`` (``[::1]:8080``; ``:8080`` = all)."""

    host: str
    """Address or name to bind; empty binds every interface."""
    port: int = Field(ge=0, le=65535)
    """TCP port; 0 lets the kernel choose one (tests)."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _LISTEN.match(value.strip())
        if match is None:
            raise ValueError("must be host:port, [ipv6]:port or :port")
        host = match.group("v6") if match.group("v6") is not None else match.group("host")
        return {"host": host, "port": int(match.group("port"))}

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _check_key(value: Any) -> Any:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(text, str):
        try:
            EncryptionKey.from_text(text)
        except EncryptionKeyError as exc:
            raise ValueError(str(exc)) from None
    return value


#: An AES-256 key: 32 random bytes, base64-encoded. Kept as a secret (hidden in reprs).
EncryptionKeyText = Annotated[SecretStr, BeforeValidator(_check_key)]
