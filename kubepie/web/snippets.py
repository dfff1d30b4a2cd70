"""Copy-ready client commands for a new app credential (pure).

Shown once, right after the credential is made, with the real public URL, S3 endpoint, access
key id and secret filled in: rclone (WebDAV), aws-cli and boto3 (S3), curl (WebDAV/HTTPS).
Shell commands quote every value with :func:`shlex.quote`; Python code writes strings as JSON
literals, which are valid Python. A credential confined to a prefix gets examples inside it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

#: The region S3 clients sign for; the S3 listener accepts any, clients need one.
REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Snippet:
    """One client's example: a title, the language (for the page) and the text to copy."""

    client: str
    language: str
    text: str


@dataclass(frozen=True, slots=True)
class SnippetValues:
    """What the examples fill in."""

    public_url: str
    s3_url: str | None
    access_key_id: str
    secret_access_key: str
    #: The mount (bucket) the examples use when the credential has no prefix.
    default_mount: str
    #: The credential's prefix (``mount/dir/...``; empty: every mount).
    prefix: str = ""

    @property
    def mount(self) -> str:
        return self.prefix.split("/", 1)[0] if self.prefix else self.default_mount

    @property
    def key_prefix(self) -> str:
        """The object key prefix within :attr:`mount` (``dir/`` or empty)."""
        _, _, rest = self.prefix.partition("/")
        return rest.strip("/") + "/" if rest.strip("/") else ""

    @property
    def dav_url(self) -> str:
        """The WebDAV URL of the folder the examples use (ends with ``/``)."""
        return f"{self.public_url.rstrip('/')}/dav/{self.mount}/{self.key_prefix}"


def rclone(values: SnippetValues) -> Snippet:
    q = shlex.quote
    text = (
        f"rclone lsf --webdav-url {q(values.public_url.rstrip('/') + '/dav/')} "
        f"--webdav-user {q(values.access_key_id)} "
        f'--webdav-pass "$(rclone obscure -- {q(values.secret_access_key)})" '
        f":webdav:{q(values.mount + '/' + values.key_prefix)}"
    )
    return Snippet("rclone (WebDAV)", "shell", text)


def aws_cli(values: SnippetValues) -> Snippet | None:
    if values.s3_url is None:
        return None
    q = shlex.quote
    text = (
        f"AWS_ACCESS_KEY_ID={q(values.access_key_id)} "
        f"AWS_SECRET_ACCESS_KEY={q(values.secret_access_key)} "
        f"aws --endpoint-url {q(values.s3_url)} --region {REGION} "
        f"s3 ls {q(f's3://{values.mount}/{values.key_prefix}')}"
    )
    return Snippet("aws-cli (S3)", "shell", text)


def boto3(values: SnippetValues) -> Snippet | None:
    if values.s3_url is None:
        return None
    j = json.dumps
    text = "\n".join(
        [
            "import boto3",
            "",
            "s3 = boto3.client(",
            '    "s3",',
            f"    endpoint_url={j(values.s3_url)},",
            f"    aws_access_key_id={j(values.access_key_id)},",
            f"    aws_secret_access_key={j(values.secret_access_key)},",
            f"    region_name={j(REGION)},",
            ")",
            f"listing = s3.list_objects_v2(Bucket={j(values.mount)}, "
            f"Prefix={j(values.key_prefix)})",
            'for item in listing.get("Contents", []):',
            '    print(item["Key"], item["Size"])',
        ]
    )
    return Snippet("boto3 (S3, Python)", "python", text)


def curl(values: SnippetValues) -> Snippet:
    q = shlex.quote
    user = q(f"{values.access_key_id}:{values.secret_access_key}")
    text = "\n".join(
        [
            f"curl -fsS -u {user} -T notes.txt {q(values.dav_url + 'notes.txt')}",
            f"curl -fsS -u {user} {q(values.dav_url + 'notes.txt')}",
        ]
    )
    return Snippet("curl (HTTPS upload and download)", "shell", text)


def snippets(values: SnippetValues) -> list[Snippet]:
    """Every example that applies (the S3 ones only when S3 is on)."""
    found = (rclone(values), aws_cli(values), boto3(values), curl(values))
    return [s for s in found if s is not None]
