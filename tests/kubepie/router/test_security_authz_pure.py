"""The pure parts of request authorization: the forwarded header view, the paths a request
names, and when a request must go create-only."""

from __future__ import annotations

import pytest
from starlette.types import Message

from identity.errors import ScopeError
from identity.models import Identity
from identity.scopes import parse_scopes
from kubepie.credentials.errors import CredentialScopeError
from kubepie.credentials.models import Credential, Owner
from kubepie.router.access import AuthMethod, Principal, authorize
from kubepie.router.errors import BadRequest
from kubepie.router.headers import prepare
from kubepie.router.paths import StoragePath, Target, dav_targets, s3_targets
from kubepie.router.s3body import check_presigned_copy, key_targets, replay
from kubepie.s3 import errors as s3_errors
from kubepie.s3 import sigv4
from kubepie.s3.sources import object_segments, parse_copy_source

ALICE = Identity(issuer="https://issuer", sub="alice", username="alice", uid=10001, gid=10001)


def _path(text: str) -> StoragePath:
    return StoragePath(tuple(s for s in text.split("/") if s))


@pytest.mark.parametrize(
    "named",
    [
        b"If-None-Match",
        b"close, Overwrite",
        b"Destination",
        b"x-amz-copy-source",
        b"x-amz-content-sha256",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Range",
        b"X-Anything",
    ],
)
def test_connection_may_not_name_end_to_end_headers(named: bytes) -> None:
    with pytest.raises(BadRequest, match="Connection"):
        prepare([(b"Connection", named), (b"If-None-Match", b"*")])


def test_connection_options_and_hop_by_hop_headers_are_dropped() -> None:
    request = prepare(
        [
            (b"Host", b"router"),
            (b"Connection", b"keep-alive, TE, close"),
            (b"TE", b"trailers"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Expect", b"100-continue"),
            (b"If-None-Match", b"*"),
            (b"X-KubePie-Create-Only", b"0"),
            (b"Authorization", b"Bearer t"),
            (b"Cookie", b"a=b"),
            (b"Content-Length", b"3"),
        ]
    )
    assert request.forwarded == ((b"host", b"router"), (b"if-none-match", b"*"))
    assert (request.length, request.chunked) == (3, False)
    view = request.view()
    assert view == {
        "host": "router",
        "if-none-match": "*",
        "authorization": "Bearer t",
        "cookie": "a=b",
    }
    # The S3 server's view is the forwarded headers joined its way, with the framing it gets.
    assert request.joined() == sigv4.headers_from_asgi(request.framing())
    assert request.joined()["content-length"] == "3"


@pytest.mark.parametrize(
    "name", [b"Overwrite", b"Destination", b"If-None-Match", b"x-amz-copy-source", b"Host"]
)
def test_repeated_single_value_headers_are_refused(name: bytes) -> None:
    with pytest.raises(BadRequest, match="more than once"):
        prepare([(name, b"F"), (name.upper(), b"T")])


def test_dav_targets_name_every_path() -> None:
    here, hosts = _path("/home/a"), ("router:8080",)
    assert dav_targets("GET", here, {}, hosts) == ((Target(here, ("read",)),), None)
    # A plain PUT creates: whether it may also replace is the principal's to say.
    for headers in ({}, {"if-none-match": "*"}, {"if-match": '"e"'}):
        assert dav_targets("PUT", here, headers, hosts) == (
            (Target(here, ("create",), creates=True),),
            None,
        )
    assert dav_targets("MKCOL", here, {}, hosts)[0] == (Target(here, ("create",), creates=True),)
    assert dav_targets("DELETE", here, {}, hosts)[0] == (Target(here, ("modify",)),)
    dest = {"destination": "http://router:8080/dav/data/b"}
    copy, raw = dav_targets("COPY", here, dest, hosts)
    assert raw == "/dav/data/b"
    assert copy == (Target(here, ("read",)), Target(_path("/data/b"), ("create",), creates=True))
    move, _ = dav_targets("MOVE", here, dest, hosts)
    assert move == (
        Target(here, ("read", "modify")),
        Target(_path("/data/b"), ("create",), creates=True),
    )
    with pytest.raises(BadRequest, match="Destination"):
        dav_targets("MOVE", here, {}, hosts)
    with pytest.raises(BadRequest, match="Source"):
        dav_targets("COPY", here, {**dest, "source": "https://elsewhere/x"}, hosts)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("home/private.txt", ("home", "private.txt")),
        ("/home/private.txt", ("home", "private.txt")),
        ("home/a%20b/c%2Fd.txt?versionId=3", ("home", "a b/c/d.txt")),
        ("/data/readme.txt?versionId=null", ("data", "readme.txt")),
    ],
)
def test_copy_source_is_parsed_as_the_file_server_does(raw: str, expected: tuple[str, str]) -> None:
    assert parse_copy_source(raw) == expected


def test_copy_source_that_no_object_can_have_is_refused() -> None:
    for raw in ("home", "/home/", ""):
        with pytest.raises(s3_errors.InvalidArgument):
            parse_copy_source(raw)
    for bucket, key in (("..", "x"), ("home", "a/../b"), ("home", "a//b")):
        with pytest.raises(s3_errors.S3Error):
            object_segments(bucket, key)


def test_s3_targets_include_the_copy_source() -> None:
    key = _path("/home/pub/x")
    copy = s3_targets("PUT", key, True, {}, {"x-amz-copy-source": "/data/r.txt?versionId=1"})
    assert copy == (Target(key, ("create",), creates=True), Target(_path("/data/r.txt"), ("read",)))
    part = s3_targets("PUT", key, True, {"uploadId": "u", "partNumber": "1"}, {})
    assert part == (Target(key, ("create",), creates=True),)
    assert s3_targets("POST", key, True, {"uploads": ""}, {})[0].creates
    assert s3_targets("DELETE", key, True, {}, {}) == (Target(key, ("modify",)),)
    assert s3_targets("GET", _path("/home"), False, {}, {}) == (Target(_path("/home"), ("read",)),)
    # DeleteObjects: the listener adds one target per key of its body.
    assert s3_targets("POST", _path("/home"), False, {"delete": ""}, {}) == ()
    assert s3_targets("POST", _path("/home"), False, {}, {}) == (
        Target(_path("/home"), ("modify",)),
    )
    assert key_targets("home", ["pub/a", "../x", "b"]) == (
        Target(_path("/home/pub/a"), ("modify",)),
        Target(_path("/home/b"), ("modify",)),
    )


def test_presigned_urls_must_sign_the_copy_source() -> None:
    presigned = {"X-Amz-SignedHeaders": "host"}
    with pytest.raises(s3_errors.AccessDenied, match="x-amz-copy-source"):
        check_presigned_copy(presigned, {"x-amz-copy-source": "home/a"})
    check_presigned_copy(
        {"X-Amz-SignedHeaders": "host;x-amz-copy-source"}, {"x-amz-copy-source": "a/b"}
    )
    check_presigned_copy({}, {"x-amz-copy-source": "home/a"})  # header-signed: verified there


def _token(*scopes: str) -> Principal:
    return Principal(ALICE, AuthMethod.BEARER, parse_scopes(scopes))


def test_create_only_when_the_token_may_create_but_not_modify() -> None:
    new = Target(_path("/home/in/new.txt"), ("create",), creates=True)
    assert authorize(_token("storage.create:/home/in"), [new]) is True
    assert authorize(_token("storage.create:/home/in", "storage.modify:/home/in"), [new]) is False
    assert authorize(_token("storage.modify:/home"), [new]) is False
    assert authorize(Principal(ALICE, AuthMethod.SESSION), [new]) is False
    # Modify elsewhere does not lift create-only here.
    assert authorize(_token("storage.create:/home/in", "storage.modify:/home/out"), [new]) is True
    with pytest.raises(ScopeError):
        authorize(_token("storage.create:/home/in"), [Target(_path("/home/in/x"), ("modify",))])
    with pytest.raises(ScopeError):
        authorize(_token("storage.read:/home"), [new])
    with pytest.raises(BadRequest):
        authorize(_token("storage.modify:/home"), [])


def _credential(prefix: str, read_only: bool = False) -> Principal:
    owner = Owner("https://issuer", "alice", "alice")
    credential = Credential("id", "AK", owner, "", read_only, prefix, 0.0, None, None)
    return Principal(ALICE, AuthMethod.SIGV4, credential=credential)


def test_every_target_passes_the_credential_checks() -> None:
    inside = Target(_path("/home/pub/x"), ("create",), creates=True)
    limited = _credential("home/pub")
    assert authorize(limited, [inside, Target(_path("/home/pub/a"), ("read",))]) is False
    for outside in (_path("/home/private.txt"), _path("/data/readme.txt")):
        with pytest.raises(CredentialScopeError, match="prefix"):
            authorize(limited, [inside, Target(outside, ("read",))])
    with pytest.raises(CredentialScopeError, match="read-only"):
        authorize(_credential("", read_only=True), [Target(_path("/home/a"), ("read", "modify"))])


async def test_replay_hands_over_the_body_then_the_client() -> None:
    later: list[Message] = [{"type": "http.disconnect"}]

    async def receive() -> Message:
        return later.pop()

    again = replay(b"<Delete/>", receive)
    assert await again() == {"type": "http.request", "body": b"<Delete/>", "more_body": False}
    assert await again() == {"type": "http.disconnect"}
