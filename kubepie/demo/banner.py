"""What ``kubepie demo`` prints once it is up: URLs, logins and commands that work as printed.

Pure: :func:`render` turns a :class:`BannerInfo` into text. Every command is on one line that
starts with ``$ `` (after two spaces), so it can be pasted as is, and the tests run exactly
those lines. The only shell variable is ``TOKEN``, set by the first command; the app
credential is written into each command that uses it, so each also works on its own.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from kubepie.demo.accounts import DEV_WARNING, Population
from kubepie.demo.config import Endpoints

#: The prefix of every printed command line.
PROMPT = "  $ "
_RULE = "=" * 78


@dataclass(frozen=True, slots=True)
class BannerInfo:
    """Everything the banner shows."""

    endpoints: Endpoints
    population: Population
    storage: str
    log_file: str
    #: The user the ready-made token and app credential belong to.
    user: str
    token: str
    token_hours: float
    access_key_id: str
    secret_access_key: str
    python: str
    sample_file: str = "data/README.md"


def _boto3(info: BannerInfo) -> str:
    code = (
        "import boto3; "
        f's3 = boto3.client("s3", endpoint_url="{info.endpoints.s3_url}", '
        f'aws_access_key_id="{info.access_key_id}", '
        f'aws_secret_access_key="{info.secret_access_key}", region_name="us-east-1"); '
        'print([o["Key"] for o in s3.list_objects_v2(Bucket="home").get("Contents", [])]); '
        'print(s3.get_object(Bucket="data", Key="README.md")["Body"].read().decode())'
    )
    return f"{shlex.quote(info.python)} -c {shlex.quote(code)}"


def commands(info: BannerInfo) -> list[str]:
    """The printed commands, in order (``TOKEN=...`` first)."""
    url = info.endpoints.url
    key, secret = shlex.quote(info.access_key_id), shlex.quote(info.secret_access_key)
    return [
        f"TOKEN={shlex.quote(info.token)}",
        f'curl -fsS -H "Authorization: Bearer $TOKEN" {url}/api/v1/whoami',
        f'curl -fsS -H "Authorization: Bearer $TOKEN" {url}/dav/{info.sample_file}',
        f"curl -fsS -u {key}:{secret} {url}/dav/home/notes.txt",
        f"rclone lsf --webdav-url {url}/dav/ --webdav-user {key} "
        f'--webdav-pass "$(rclone obscure -- {secret})" :webdav:home',
        # aws-sdk-go in rclone refuses any AWS_CA_BUNDLE on a plain-http endpoint (which needs
        # none), so the command clears it.
        "env -u AWS_CA_BUNDLE rclone lsf --s3-provider Other "
        f"--s3-endpoint {info.endpoints.s3_url} "
        f"--s3-access-key-id {key} --s3-secret-access-key {secret} :s3:data",
        _boto3(info),
    ]


def render(info: BannerInfo) -> str:
    """The whole banner."""
    endpoints, population = info.endpoints, info.population
    if population.multi_user:
        mode = (
            "multi-user: running as root, each user's file server runs as that user "
            "(uid, gid, groups), so the kernel enforces the sample permissions."
        )
    else:
        only = population.users[0].username
        mode = (
            f"SINGLE-USER demo: not running as root, so only {only} (you) can be served; "
            "run as root for alice, bob and carol with real permissions."
        )
    logins = "\n".join(
        f"    {u.username:<8} password {u.password:<14} uid {u.uid}, "
        f"groups: {', '.join(u.group_names) or '(personal only)'}"
        for u in population.users
    )
    lines = [
        _RULE,
        f" KubePie demo: {DEV_WARNING}",
        _RULE,
        f"  Web UI, WebDAV, API  {endpoints.url}/",
        f"  S3 endpoint          {endpoints.s3_url}   (buckets: home, data, group-<group>)",
        f"  Dev OIDC issuer      {endpoints.issuer}   (loopback only, demo passwords)",
        f"  Sample data          {info.storage}",
        f"  Router log           {info.log_file}",
        f"  Mode                 {mode}",
        "",
        "  Logins (the issuer's login page lists them too):",
        logins,
        "",
        f"  Ready-made credentials of {info.user}: an access token (valid "
        f"{info.token_hours:g} h) and an app credential (access key {info.access_key_id}).",
        "  Paste these commands, TOKEN first (rclone needs the rclone package, boto3 the "
        "boto3 module):",
        *(PROMPT + command for command in commands(info)),
        "",
        "  Press Ctrl-C to stop the demo.",
        _RULE,
    ]
    return "\n".join(lines) + "\n"
