"""Pure parts of the web UI: CSRF tokens, client snippets, PROPFIND listings, names, the
multipart upload parser, error descriptions and template rendering (escaping)."""

from __future__ import annotations

import ast
import shlex
import subprocess
from collections.abc import AsyncIterator

import pytest

from identity.errors import DirectoryUnavailableError
from kubepie.router.errors import UpstreamUnavailable
from kubepie.settings.models import KubePieSettings
from kubepie.web.app import page_defaults
from kubepie.web.csrf import CsrfGuard
from kubepie.web.errorpages import describe
from kubepie.web.errors import (
    AlreadyExists,
    BadForm,
    CsrfRefused,
    FileServerFailed,
    PageNotFound,
    PermissionDenied,
)
from kubepie.web.files import content_disposition, refusal
from kubepie.web.listing import Entry, human_size, human_time, parse_multistatus
from kubepie.web.render import Pages, load_assets, make_environment, page_headers
from kubepie.web.settings import WebSettings, mount_rank
from kubepie.web.snippets import SnippetValues, snippets
from kubepie.web.upload import UploadStream, check_name, existing_name, file_name

# -- CSRF -------------------------------------------------------------------------------------


def test_csrf_token_is_per_session_and_per_key() -> None:
    guard = CsrfGuard.from_material(b"k" * 32)
    token = guard.token("session-a")
    assert token == guard.token("session-a")
    assert token != guard.token("session-b")
    assert token != CsrfGuard.from_material(b"j" * 32).token("session-a")
    assert guard.valid("session-a", token)
    assert not guard.valid("session-b", token)
    assert not guard.valid("session-a", token[:-1])
    assert not guard.valid("session-a", None)
    assert not guard.valid(None, token)
    assert not guard.valid("session-a", "é" * 43)
    assert "k" * 8 not in repr(guard)
    with pytest.raises(ValueError, match="key"):
        CsrfGuard.from_material(b"")


# -- snippets ---------------------------------------------------------------------------------

VALUES = SnippetValues(
    public_url="https://files.example.org",
    s3_url="https://files.example.org:9000",
    access_key_id="KPEXAMPLEKEY",
    secret_access_key="-secret/with'quote",
    default_mount="home",
)


def run_as_bash(line: str) -> list[str]:
    """The words bash passes to the command of ``line`` (clients replaced by a printer)."""
    printer = 'printf "%s\\0" "$FUNCNAME" "$@" "${AWS_ACCESS_KEY_ID-}" "${AWS_SECRET_ACCESS_KEY-}"'
    script = f"rclone() {{ {printer}; }}; aws() {{ {printer}; }}; curl() {{ {printer}; }}; {line}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


def test_snippets_fill_in_the_real_values_quoted() -> None:
    secret = VALUES.secret_access_key
    by_client = {s.client.split()[0]: s for s in snippets(VALUES)}
    assert set(by_client) == {"rclone", "aws-cli", "boto3", "curl"}
    rclone = run_as_bash(by_client["rclone"].text)
    assert rclone[:5] == [
        "rclone",
        "lsf",
        "--webdav-url",
        "https://files.example.org/dav/",
        "--webdav-user",
    ]
    # The password is what the inner "rclone obscure -- SECRET" printed: the secret, intact.
    assert rclone[6] == "--webdav-pass"
    assert rclone[7].endswith("--" + secret)
    assert rclone[8] == ":webdav:home/"
    aws = run_as_bash(by_client["aws-cli"].text)
    assert aws[1:7] == [
        "--endpoint-url",
        "https://files.example.org:9000",
        "--region",
        "us-east-1",
        "s3",
        "ls",
    ]
    assert aws[7:] == ["s3://home/", "KPEXAMPLEKEY", secret]
    for line in by_client["curl"].text.splitlines():
        words = run_as_bash(line)
        assert words[words.index("-u") + 1] == f"KPEXAMPLEKEY:{secret}"
    tree = ast.parse(by_client["boto3"].text)
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.keywords)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert kwargs == {
        "endpoint_url": "https://files.example.org:9000",
        "aws_access_key_id": "KPEXAMPLEKEY",
        "aws_secret_access_key": "-secret/with'quote",
        "region_name": "us-east-1",
    }


def test_snippets_stay_inside_a_prefix_and_skip_s3_when_it_is_off() -> None:
    values = SnippetValues(
        public_url="http://127.0.0.1:8080",
        s3_url=None,
        access_key_id="K",
        secret_access_key="S",
        default_mount="home",
        prefix="group-physics/run 7",
    )
    assert values.mount == "group-physics"
    assert values.key_prefix == "run 7/"
    assert values.dav_url == "http://127.0.0.1:8080/dav/group-physics/run 7/"
    found = snippets(values)
    assert [s.client.split()[0] for s in found] == ["rclone", "curl"]
    assert shlex.split(found[0].text)[-1] == ":webdav:group-physics/run 7/"


# -- listings ---------------------------------------------------------------------------------

MULTISTATUS = b"""<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:">
<D:response><D:href>/dav/home/</D:href><D:propstat><D:prop>
  <D:resourcetype><D:collection/></D:resourcetype></D:prop>
  <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/dav/home/zeta.txt</D:href><D:propstat><D:prop>
  <D:resourcetype/><D:getcontentlength>1536</D:getcontentlength>
  <D:getlastmodified>Tue, 03 Feb 2026 10:20:30 GMT</D:getlastmodified></D:prop>
  <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/dav/home/Run%207%20%C3%A9/</D:href><D:propstat><D:prop>
  <D:resourcetype><D:collection/></D:resourcetype></D:prop>
  <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  <D:propstat><D:prop><D:getcontentlength/></D:prop>
  <D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>
<D:response><D:href>/dav/home/%3Cb%3Ealpha</D:href><D:propstat><D:prop>
  <D:resourcetype/><D:getcontentlength>0</D:getcontentlength></D:prop>
  <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/dav/home/Run%207%20%C3%A9/deeper</D:href></D:response>
<D:response><D:href>/dav/other/x</D:href></D:response>
</D:multistatus>"""


def test_parse_multistatus_lists_children_folders_first() -> None:
    entries = parse_multistatus(MULTISTATUS, ("home",))
    assert entries == [
        Entry("Run 7 é", True, None, None),
        Entry("<b>alpha", False, 0, None),
        Entry("zeta.txt", False, 1536, 1770114030.0),
    ]


def test_parse_multistatus_of_a_file_is_not_a_folder() -> None:
    answer = (
        b'<D:multistatus xmlns:D="DAV:"><D:response><D:href>/dav/home/a.txt</D:href>'
        b"<D:propstat><D:prop><D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
        b"</D:propstat></D:response></D:multistatus>"
    )
    with pytest.raises(PageNotFound, match=r"/home/a\.txt is a file"):
        parse_multistatus(answer, ("home", "a.txt"))


def test_parse_multistatus_refuses_dtds_and_broken_xml() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(FileServerFailed, match="DTD"):
        parse_multistatus(bomb, ("home",))
    with pytest.raises(FileServerFailed, match="not valid XML"):
        parse_multistatus(b"<D:multistatus", ("home",))


def test_human_sizes_and_times() -> None:
    assert human_size(None) == "—"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(3 * 1024**2 + 17) == "3.0 MiB"
    assert human_size(500 * 1024**3) == "500 GiB"
    assert human_time(1770114030.0) == "2026-02-03 10:20 UTC"
    assert human_time(None) == "—"


# -- names, refusals, downloads -----------------------------------------------------------------


def test_file_names_from_browsers_and_users() -> None:
    assert file_name("C:\\Users\\a\\report.pdf") == "report.pdf"
    assert file_name("dir/notes.txt") == "notes.txt"
    assert check_name("  run 7 (final) ") == "run 7 (final)"
    for bad in ("", ".", "..", "a\x00b", "tab\there", "x" * 256):
        with pytest.raises(BadForm):
            file_name(bad)
    for bad in ("a/b", "a\\b", ".."):
        with pytest.raises(BadForm):
            check_name(bad)
    # A listed name is taken as it is: never cleaned up into another entry's name.
    assert existing_name("a\\b ") == "a\\b "
    for bad in ("", ".", "..", "a/b", "a\x00"):
        with pytest.raises(BadForm):
            existing_name(bad)


def test_refusals_say_what_was_refused() -> None:
    denied = refusal(403, "create the folder", "/data/x", "write permission on the folder /data")
    assert isinstance(denied, PermissionDenied)
    assert "needs write permission on the folder /data" in str(denied)
    assert isinstance(refusal(404, "list", "/home/x", "read permission"), PageNotFound)
    assert isinstance(refusal(405, "create the folder", "/home/x", "w"), AlreadyExists)
    assert isinstance(refusal(412, "rename /home/a to", "b", "w"), AlreadyExists)
    assert isinstance(refusal(500, "delete", "/home/a", "w"), FileServerFailed)


def test_content_disposition_keeps_unicode_names() -> None:
    header = content_disposition('Résumé "final".pdf').decode()
    assert header == (
        'attachment; filename="R_sum_ _final_.pdf"; '
        "filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"
    )


# -- the upload parser ------------------------------------------------------------------------


def multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


class Recorder:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.tokens: list[str | None] = []

    def check(self, token: str | None) -> None:
        self.tokens.append(token)
        if token != "good":
            raise CsrfRefused("wrong token")

    async def put(self, name: str, chunks: AsyncIterator[bytes]) -> None:
        self.files[name] = b"".join([c async for c in chunks])


@pytest.mark.parametrize("piece", [7, 1000, 1 << 20])
async def test_upload_stream_stores_each_file_in_order(piece: int) -> None:
    big = bytes(range(256)) * 300 + b"\r\n--not-the-boundary\r\n"
    body = multipart(
        "XyZ",
        [("csrf_token", None, b"good"), ("files", "a.bin", big), ("files", "b é.txt", b"hi")],
    )
    recorder = Recorder()
    stream = UploadStream(b"XyZ", recorder.check, recorder.put)
    assert await stream.run(pieces(body, piece)) == ["a.bin", "b é.txt"]
    assert recorder.files == {"a.bin": big, "b é.txt": b"hi"}
    assert recorder.tokens == ["good"]


@pytest.mark.parametrize(
    "parts",
    [
        [("files", "a.bin", b"data")],  # no token at all
        [("files", "a.bin", b"data"), ("csrf_token", None, b"good")],  # token after the file
        [("csrf_token", None, b"bad"), ("files", "a.bin", b"data")],  # wrong token
    ],
)
async def test_upload_stream_stores_nothing_without_the_token_first(
    parts: list[tuple[str, str | None, bytes]],
) -> None:
    recorder = Recorder()
    stream = UploadStream(b"B", recorder.check, recorder.put)
    with pytest.raises(CsrfRefused):
        await stream.run(pieces(multipart("B", parts), 64))
    assert recorder.files == {}


async def test_upload_stream_reports_the_file_servers_refusal() -> None:
    async def refuse(name: str, chunks: AsyncIterator[bytes]) -> None:
        await anext(chunks)
        raise PermissionDenied(f"You may not upload {name}")

    body = multipart("B", [("csrf_token", None, b"good"), ("files", "x", b"y" * 100_000)])
    stream = UploadStream(b"B", Recorder().check, refuse)
    with pytest.raises(PermissionDenied, match="upload x"):
        await stream.run(pieces(body, 1000))


# -- error pages and templates ----------------------------------------------------------------


def test_describe_errors_for_people() -> None:
    assert describe(CsrfRefused("x"), 403).title == "Form refused"
    denied = describe(PermissionDenied("You may not delete /data/a: it needs w"), 403)
    assert denied.what.startswith("You may not delete /data/a")
    assert describe(PageNotFound("x"), 401).login
    directory = describe(DirectoryUnavailableError("ldap down"), 503)
    assert directory.title == "Directory unreachable"
    assert "ldap" not in directory.what
    assert describe(UpstreamUnavailable("no"), 503).title == "File server unavailable"
    assert describe(RuntimeError("secret detail"), 500).what == (
        "An unexpected error happened on the server."
    )


def settings() -> KubePieSettings:
    return KubePieSettings.model_validate(
        {
            "public_url": "https://files.example.org/",
            "s3_listen": "0.0.0.0:9000",
            "oidc": {
                "issuer": "https://id.example.org",
                "client_id": "kubepie",
                "client_secret": "s",
            },
            "identity": {"source": "claims", "uid_claim": "uid"},
            "mounts": [
                {"name": "group-{group}", "path": "/group/{group}"},
                {"name": "home", "path": "/home/{username}"},
                {"name": "data", "path": "/data", "read_only": True},
            ],
            "credentials": {"encryption_keys": ["A" * 43 + "="]},
        }
    )


def test_web_settings_from_the_router_settings() -> None:
    web = WebSettings.from_settings(settings())
    assert web.public_url == "https://files.example.org"
    assert web.s3_url == "https://files.example.org:9000"
    assert web.default_mount == "home"
    assert web.read_only_mounts == frozenset({"data"})
    assert web.identity_source == "claims"
    assert "uid" in web.identity_detail
    assert "csrf_material" not in repr(web)


def test_templates_escape_names_and_ship_with_assets() -> None:
    web = WebSettings.from_settings(settings())
    pages = Pages(make_environment(), page_defaults(web), page_headers("https://id.example.org/x"))
    evil = "<script>alert(1)</script>"
    html = pages.html(
        "folder.html",
        {
            "crumbs": [("home", "/files/home/")],
            "path": "/home",
            "rows": [
                {
                    "entry": Entry(evil, False, 10, 0.0),
                    "url": "/download/home/x",
                    "rename": "?rename=x",
                    "delete": "?delete=x",
                }
            ],
            "addresses": {"WebDAV": "https://files.example.org/dav/home/"},
            "read_only": False,
            "csrf": "tok",
        },
    )
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    csp = pages.page("landing.html", {}).headers["content-security-policy"]
    assert "form-action 'self' https://id.example.org;" in csp
    assert "script-src 'self';" in csp
    assert html.count('name="csrf_token" value="tok"') == 2  # upload and new folder
    landing = pages.html("landing.html", {})
    assert 'href="/login"' in landing
    assets = load_assets()
    assert b".crumbs" in assets["kubepie.css"]
    assert b"XMLHttpRequest" in assets["kubepie.js"]


def test_mounts_keep_the_configured_order() -> None:
    order = ("home", "data", "group-{group}", "scratch")
    names = ["scratch", "group-physics", "data", "group-alice", "home", "other"]
    ranked = sorted(names, key=lambda n: mount_rank(n, order))
    assert ranked == ["home", "data", "group-alice", "group-physics", "scratch", "other"]
    assert mount_rank("group-", order) == (4, "group-")  # the template needs a group name
