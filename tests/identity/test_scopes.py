"""WLCG storage scopes: parsing into capabilities and segment-wise path matching (pure)."""

from __future__ import annotations

import pytest

from identity.errors import ScopeError
from identity.scopes import Capabilities, Capability, allows, parse_scope, parse_scopes, require


def caps(*scopes: str) -> Capabilities:
    return parse_scopes(scopes)


def test_prefix_match_is_by_segment_not_by_string() -> None:
    granted = caps("storage.read:/foo/bar")
    assert allows(granted, "read", "/foo/bar")
    assert allows(granted, "read", "/foo/bar/")
    assert allows(granted, "read", "/foo/bar/x/y.txt")
    assert not allows(granted, "read", "/foo/bargain")
    assert not allows(granted, "read", "/foo/ba")
    assert not allows(granted, "read", "/foo")
    assert not allows(granted, "read", "/")


def test_root_grants_everything_for_its_operation_only() -> None:
    granted = caps("storage.read:/")
    assert allows(granted, "read", "/")
    assert allows(granted, "read", "/any/where/at/all")
    assert not allows(granted, "create", "/any")
    assert not allows(granted, "modify", "/any")


def test_modify_includes_create_but_not_read() -> None:
    granted = caps("storage.modify:/data", "storage.create:/upload")
    assert allows(granted, "modify", "/data/x")
    assert allows(granted, "create", "/data/x")
    assert not allows(granted, "read", "/data/x")
    assert allows(granted, "create", "/upload/new")
    assert not allows(granted, "modify", "/upload/new")


def test_unknown_scopes_are_ignored_and_do_not_restrict() -> None:
    granted = caps("openid", "offline_access", "storage.stage:/tape", "storage.read", "wlcg")
    assert granted.entries == ()
    assert not granted.restricted
    assert not allows(granted, "read", "/tape")
    assert caps("openid", "storage.read:/x").restricted


@pytest.mark.parametrize(
    "scope",
    [
        "storage.read:/foo/../etc",
        "storage.read:/..",
        "storage.modify:/a/./b",
        "storage.create:relative/path",
        "storage.read:",
        "storage.read:/a\x00b",
    ],
)
def test_malformed_storage_paths_are_refused(scope: str) -> None:
    with pytest.raises(ScopeError, match="malformed path") as caught:
        parse_scopes(["openid", scope])
    assert caught.value.status == 403


def test_malformed_request_paths_are_never_allowed() -> None:
    granted = caps("storage.read:/")
    assert not allows(granted, "read", "/foo/../etc/shadow")
    assert not allows(granted, "read", "relative")
    assert not allows(granted, "read", "/a/./b")


def test_paths_are_normalised_and_capabilities_deduplicated() -> None:
    granted = caps("storage.read://home//alice/", "storage.read:/home/alice")
    assert granted.entries == (Capability("read", ("home", "alice")),)
    assert str(granted.entries[0]) == "storage.read:/home/alice"
    assert allows(granted, "read", "/home//alice///notes")
    assert parse_scope("storage.read:/") == Capability("read", ())


def test_require_raises_a_scope_error() -> None:
    granted = caps("storage.read:/home/alice")
    require(granted, "read", "/home/alice/x")
    with pytest.raises(ScopeError, match="do not grant modify"):
        require(granted, "modify", "/home/alice/x")
