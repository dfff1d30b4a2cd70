"""Pure parts of the router: path decoding, WLCG operations, header filtering, cookies,
credential requests, access checks, accounting lines."""

from __future__ import annotations

import json

import pytest

from identity.errors import ScopeError
from identity.models import Identity
from identity.scopes import parse_scopes
from kubepie.credentials.errors import CredentialScopeError
from kubepie.credentials.models import Credential, Owner
from kubepie.router.access import AuthMethod, Principal, check
from kubepie.router.accounting import RequestRecord
from kubepie.router.api import creation_params
from kubepie.router.authn import parse_cookies, session_token
from kubepie.router.errors import BadRequest
from kubepie.router.login import safe_next
from kubepie.router.paths import (
    dav_operations,
    dav_path,
    destination_path,
    s3_path,
)
from kubepie.router.proxy import response_headers, upstream_headers
from kubepie.router.session import CookieSealer
from kubepie.router.upstream import request_head

ALICE = Identity("https://issuer", "sub-a", "alice", 10001, 10001, (20001,), ("physics",))


def _credential(**kw: object) -> Credential:
    base: dict[str, object] = {
        "id": "c1",
        "access_key_id": "KPAAAAAAAAAAAAAAAAAA",
        "owner": Owner("https://issuer", "sub-a", "alice"),
        "description": "",
        "read_only": False,
        "prefix": "",
        "created_at": 0.0,
        "expires_at": None,
        "last_used_at": None,
    }
    base.update(kw)
    return Credential(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        ("/dav", ()),
        ("/dav/", ()),
        ("/dav/home//a/b/", ("home", "a", "b")),
        ("/dav/home/a%20b", ("home", "a b")),
        ("/dav/home/%C3%A9t%C3%A9", ("home", "été")),
        ("/dav/home/ctl%01%5C", ("home", "ctl\x01\\")),
    ],
)
def test_dav_paths(raw: str, segments: tuple[str, ...]) -> None:
    assert dav_path(raw).segments == segments


@pytest.mark.parametrize(
    "raw",
    [
        "/dav/home/../x",
        "/dav/home/./x",
        "/dav/home/%2e%2E/x",
        "/dav/home/a%2Fb",
        "/dav/home/a%00",
        "/dav/home/%FF",
        "/davx/home",
        "/other",
    ],
)
def test_dav_path_tricks_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        dav_path(raw)


def test_s3_paths_include_the_listing_prefix_directory() -> None:
    assert s3_path("/home/a/b.txt", None).segments == ("home", "a", "b.txt")
    assert s3_path("/home", "projects/x/part").segments == ("home", "projects", "x")
    assert s3_path("/home", "projects").segments == ("home",)
    with pytest.raises(BadRequest):
        s3_path("/home", "../x/")


def test_wlcg_operations_of_webdav_methods() -> None:
    assert dav_operations("PROPFIND", {}) == ("read",)
    assert dav_operations("GET", {}) == ("read",)
    assert dav_operations("PUT", {}) == ("modify",)
    assert dav_operations("PUT", {"if-none-match": "*"}) == ("create",)
    assert dav_operations("MKCOL", {}) == ("create",)
    assert dav_operations("DELETE", {}) == ("modify",)
    assert dav_operations("BREW", {}) == ("modify",)  # unknown methods may change data


def test_destination_must_name_this_host() -> None:
    raw, path = destination_path("http://router:8080/dav/home/b", "router:8080")
    assert raw == "/dav/home/b"
    assert path.segments == ("home", "b")
    assert destination_path("/dav/home/c", "x")[0] == "/dav/home/c"
    behind_proxy = destination_path(
        "https://files.example.org/dav/home/d", "10.0.0.5:8080", "files.example.org"
    )
    assert behind_proxy[0] == "/dav/home/d"
    for bad in ("http://evil/dav/home/b", "ftp://router:8080/dav/home/b", "/dav/home/b?x=1"):
        with pytest.raises(BadRequest):
            destination_path(bad, "router:8080")


def test_upstream_headers_drop_secrets_and_hop_by_hop() -> None:
    headers, length, chunked = upstream_headers(
        [
            (b"Host", b"router"),
            (b"Authorization", b"Basic eDp5"),
            (b"Cookie", b"kubepie_session=x"),
            (b"X-KubePie-Server-Secret", b"forged"),
            (b"x-kubepie-user", b"bob"),
            (b"Connection", b"keep-alive, TE"),
            (b"TE", b"trailers"),
            (b"Depth", b"1"),
            (b"Content-Length", b"5"),
            (b"Destination", b"http://router/dav/home/x"),
        ],
        "the-secret",
        replace={b"destination": b"/dav/home/x"},
    )
    names = [n for n, _ in headers]
    assert (b"x-kubepie-server-secret", b"the-secret") in headers
    assert names.count(b"x-kubepie-server-secret") == 1
    assert b"authorization" not in names
    assert b"cookie" not in names
    assert b"x-kubepie-user" not in names
    assert b"te" not in names
    assert b"connection" not in names
    assert (b"depth", b"1") in headers
    assert (b"destination", b"/dav/home/x") in headers
    assert (b"content-length", b"5") in headers
    assert (length, chunked) == (5, False)
    _, length, chunked = upstream_headers([(b"transfer-encoding", b"chunked")], "s")
    assert (length, chunked) == (None, True)


def test_response_headers_keep_length_drop_hop_by_hop() -> None:
    kept = response_headers(
        [(b"content-length", b"3"), (b"connection", b"close"), (b"etag", b'"x"')]
    )
    assert kept == [(b"content-length", b"3"), (b"etag", b'"x"')]
    assert request_head("GET", b"/a", [(b"host", b"h")]) == b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"


def test_session_cookies_are_sealed_bound_and_expire() -> None:
    now = [1000.0]
    sealer = CookieSealer.from_materials([b"k" * 32])
    sealer = CookieSealer(sealer.keys, clock=lambda: now[0])
    value = sealer.seal("kubepie_session", {"sub": "alice"}, 60)
    assert "alice" not in value
    assert sealer.open("kubepie_session", value) == {"sub": "alice"}
    assert sealer.open("kubepie_login", value) is None  # bound to its name
    tampered = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    assert sealer.open("kubepie_session", tampered) is None
    rotated = CookieSealer.from_materials([b"n" * 32, b"k" * 32])
    assert CookieSealer(rotated.keys, clock=lambda: now[0]).open("kubepie_session", value)
    now[0] += 61
    assert sealer.open("kubepie_session", value) is None
    assert sealer.open("kubepie_session", "garbage") is None


def test_cookie_header_and_session_payload() -> None:
    assert parse_cookies('a=1; kubepie_session="v1.x"; a=2') == {
        "a": "1",
        "kubepie_session": "v1.x",
    }
    assert session_token({"iss": "i", "sub": "s", "claims": {}}) is not None
    assert session_token({"iss": "i", "sub": 3, "claims": {}}) is None


def test_login_return_paths_stay_local() -> None:
    assert safe_next("/dav/home/") == "/dav/home/"
    for bad in (None, "", "https://evil", "//evil", "/\\evil", "evil"):
        assert safe_next(bad) == "/"


def test_credential_creation_parameters() -> None:
    assert creation_params({})["expires_in"] is None
    assert creation_params({"expires_in": 60, "read_only": True, "prefix": "home/a"}) == {
        "expires_in": 60,
        "read_only": True,
        "prefix": "home/a",
        "description": "",
    }
    bad: object
    for bad in (
        [],
        {"expires_in": True},
        {"expires_in": "60"},
        {"expires_in": float("nan")},
        {"read_only": "yes"},
        {"prefix": 3},
        {"owner": "bob"},
    ):
        with pytest.raises(BadRequest):
            creation_params(bad)


def test_access_checks_only_narrow() -> None:
    home_a = dav_path("/dav/home/a")
    check(Principal(ALICE, AuthMethod.SESSION), home_a, ("modify",))
    read_only = Principal(ALICE, AuthMethod.BASIC, credential=_credential(read_only=True))
    check(read_only, home_a, ("read",))
    with pytest.raises(CredentialScopeError):
        check(read_only, home_a, ("create",))
    prefixed = Principal(ALICE, AuthMethod.BASIC, credential=_credential(prefix="home/a"))
    check(prefixed, home_a, ("modify",))
    with pytest.raises(CredentialScopeError):
        check(prefixed, dav_path("/dav/home/ab"), ("read",))
    scoped = Principal(ALICE, AuthMethod.BEARER, parse_scopes(["openid", "storage.read:/home"]))
    check(scoped, home_a, ("read",))
    with pytest.raises(ScopeError, match="do not grant"):
        check(scoped, home_a, ("modify",))
    with pytest.raises(ScopeError, match="do not grant"):
        check(scoped, dav_path("/dav/data/x"), ("read",))


def test_accounting_line_has_the_fields_and_no_secrets() -> None:
    record = RequestRecord("PUT", "/home/a", "home", started=10.0, status=201)
    record.principal = Principal(ALICE, AuthMethod.BASIC, credential=_credential())
    record.bytes_in = 5
    line = json.loads(record.line(now=10.5, wall=0.0))
    assert line == {
        "time": "1970-01-01T00:00:00.000+00:00",
        "issuer": "https://issuer",
        "sub": "sub-a",
        "username": "alice",
        "uid": 10001,
        "auth": "basic",
        "credential": "c1",
        "method": "PUT",
        "mount": "home",
        "path": "/home/a",
        "status": 201,
        "bytes_in": 5,
        "bytes_out": 0,
        "duration_s": 0.5,
    }
