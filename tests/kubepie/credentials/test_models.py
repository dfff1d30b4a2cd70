"""Pure checks: prefix normalization, read-only and prefix confinement, the error tree."""

from __future__ import annotations

import inspect

import pytest

from kubepie.credentials import errors
from kubepie.credentials.errors import CredentialScopeError, InvalidCredentialRequest
from kubepie.credentials.models import (
    Credential,
    Owner,
    check_access,
    normalize_prefix,
    within_prefix,
)
from tests.kubepie.credentials.conftest import ALICE


def _credential(*, read_only: bool = False, prefix: str = "") -> Credential:
    return Credential("c1", "KP" + "A" * 18, ALICE, "", read_only, prefix, 0.0, None, None)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("", ""), ("/", ""), ("home", "home"), ("/home/projects/", "home/projects")],
)
def test_prefix_is_normalized(raw: str, normalized: str) -> None:
    assert normalize_prefix(raw) == normalized


@pytest.mark.parametrize("raw", ["home/..", "./home", "home//x", "a\\b", "a\x00b", "x" * 1025])
def test_unsafe_prefixes_are_refused_not_cleaned(raw: str) -> None:
    with pytest.raises(InvalidCredentialRequest):
        normalize_prefix(raw)


def test_prefix_matches_whole_segments() -> None:
    assert within_prefix("home/projects", ["home", "projects"])
    assert within_prefix("home/projects", ["home", "projects", "a.txt"])
    assert not within_prefix("home/projects", ["home", "projects2"])
    assert not within_prefix("home/projects", ["home"])
    assert not within_prefix("home/projects", [])
    assert within_prefix("", [])


def test_read_only_credential_cannot_write() -> None:
    reader = _credential(read_only=True)
    check_access(reader, ["home", "a.txt"], write=False)
    with pytest.raises(CredentialScopeError, match="read-only") as refused:
        check_access(reader, ["home", "a.txt"], write=True)
    assert refused.value.status == 403
    check_access(_credential(), ["home", "a.txt"], write=True)


def test_prefixed_credential_stays_inside_its_prefix() -> None:
    confined = _credential(prefix="data/beamline")
    check_access(confined, ["data", "beamline", "run1"], write=True)
    for outside in (["data"], ["data", "beamline2"], ["home", "beamline"]):
        with pytest.raises(CredentialScopeError, match="outside"):
            check_access(confined, outside, write=False)


def test_owner_needs_every_part() -> None:
    with pytest.raises(InvalidCredentialRequest):
        Owner("https://idp.example", "", "alice")


def test_every_error_is_in_the_documented_tree_with_a_status() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.CredentialError)
    ]
    assert len(classes) == 12
    doc = errors.__doc__ or ""
    for cls in classes:
        assert cls.__name__ in doc
        assert cls.status in {400, 401, 403, 404, 500}
