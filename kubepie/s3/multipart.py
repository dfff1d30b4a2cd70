"""Multipart uploads staged on the mount's own filesystem (blocking I/O: run in threads).

Layout: ``<mount root>/<staging_dir>-<uid>/<upload id>/upload.json`` describes the upload (key,
start time, content type, user metadata); each part is a file ``<NNNNN>-<md5 hex>``, written
to a temporary file first and renamed to that name once complete, so a part's ETag needs no
xattr and a dropped UploadPart leaves only its temporary file, removed at once. The staging
directory starts with the reserved ``.kubepie-s3`` prefix: listings never show it and no key
can name it. It needs a writable mount root; on a mount whose root the user may not write,
CreateMultipartUpload answers ``AccessDenied``.

Complete checks the part list (ascending, every part present with its ETag, all but the last
at least ``min_part_size``), concatenates the parts into a temporary file beside the target
with ``copy_file_range`` (no bytes through Python; reflinks where the filesystem can), stores
the ``md5-of-md5s-N`` ETag, renames the result into place and removes the staging directory.
Abort removes the staging directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubepie.fileserver.mounts import Mount
from kubepie.fileserver.uploads import Upload
from kubepie.s3 import errors
from kubepie.s3.models import PartInfo, UploadInfo
from kubepie.s3.objects import (
    ObjectPath,
    commit_upload,
    copy_range,
    make_parents,
    open_upload,
    resolve,
    xattrs_for,
)
from kubepie.s3.settings import S3Settings

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_FILE = re.compile(r"(\d{5})-([0-9a-f]{32})")
MAX_PART_NUMBER = 10000


def staging_root(mount: Mount, settings: S3Settings) -> Path:
    """This user's staging directory in ``mount``: one per uid, since a group area's root is
    shared by its members and each member's uploads must stay their own (mode 0700)."""
    return mount.root / f"{settings.staging_dir}-{os.getuid()}"


def _upload_dir(mount: Mount, settings: S3Settings, upload_id: str) -> Path:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise errors.NoSuchUpload("The specified upload does not exist.", resource=upload_id)
    return staging_root(mount, settings) / upload_id


def create(
    mount: Mount,
    obj: ObjectPath,
    settings: S3Settings,
    *,
    content_type: str,
    metadata: Mapping[str, str],
) -> str:
    root = staging_root(mount, settings)
    upload_id = secrets.token_hex(16)
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        (root / upload_id).mkdir(mode=0o700)
        description = {
            "key": obj.key,
            "initiated": time.time(),
            "content_type": content_type,
            "metadata": dict(metadata),
        }
        (root / upload_id / "upload.json").write_text(json.dumps(description))
    except OSError as exc:
        raise errors.from_oserror(exc, obj.key) from exc
    return upload_id


def load(mount: Mount, settings: S3Settings, upload_id: str, key: str | None) -> UploadInfo:
    """The upload ``upload_id`` (for ``key``, when given); ``NoSuchUpload`` otherwise."""
    directory = _upload_dir(mount, settings, upload_id)
    try:
        description = json.loads((directory / "upload.json").read_text())
    except (OSError, ValueError) as exc:
        raise errors.NoSuchUpload(
            "The specified upload does not exist.", resource=upload_id
        ) from exc
    if key is not None and description.get("key") != key:
        raise errors.NoSuchUpload("The upload is for another key.", resource=upload_id)
    return UploadInfo(
        key=str(description["key"]),
        upload_id=upload_id,
        initiated=float(description["initiated"]),
        content_type=str(description.get("content_type") or "binary/octet-stream"),
        metadata={str(k): str(v) for k, v in dict(description.get("metadata") or {}).items()},
    )


def check_part_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise errors.InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}"
        )
    return number


def part_file(mount: Mount, settings: S3Settings, upload: UploadInfo) -> Upload:
    """A temporary part file inside the upload's staging directory."""
    directory = _upload_dir(mount, settings, upload.upload_id)
    return open_upload(directory / "pending", fsync=settings.fsync, resource=upload.key)


def commit_part(part: Upload, number: int, md5_hex: str, resource: str) -> PartInfo:
    """Rename a complete part into place, replacing any earlier upload of the same number."""
    directory = os.path.dirname(part.target)
    final = f"{number:05d}-{md5_hex}"
    part.target = os.path.join(directory, final)
    st = commit_upload(part, None, resource)
    part.release_old()
    for name in os.listdir(directory):
        match = _PART_FILE.fullmatch(name)
        if match and int(match[1]) == number and name != final:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
    return PartInfo(number, st.st_size, st.st_mtime, f'"{md5_hex}"')


def list_parts(mount: Mount, settings: S3Settings, upload: UploadInfo) -> list[PartInfo]:
    directory = _upload_dir(mount, settings, upload.upload_id)
    parts: list[PartInfo] = []
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise errors.NoSuchUpload("The specified upload does not exist.") from exc
    for name in names:
        match = _PART_FILE.fullmatch(name)
        if match is None:
            continue
        with contextlib.suppress(OSError):
            st = os.stat(directory / name)
            parts.append(PartInfo(int(match[1]), st.st_size, st.st_mtime, f'"{match[2]}"'))
    parts.sort(key=lambda part: part.number)
    return parts


def _check_parts(
    requested: Sequence[tuple[int, str]], available: Sequence[PartInfo], settings: S3Settings
) -> list[PartInfo]:
    by_number = {part.number: part for part in available}
    chosen: list[PartInfo] = []
    previous = 0
    for number, etag in requested:
        if number <= previous:
            raise errors.InvalidPartOrder("The list of parts was not in ascending order.")
        previous = number
        part = by_number.get(number)
        if part is None or part.etag.strip('"') != etag.strip('"'):
            raise errors.InvalidPart(f"Part {number} was not uploaded or its ETag differs.")
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < settings.min_part_size:
            raise errors.EntityTooSmall(
                f"Part {part.number} is smaller than the minimum allowed object size."
            )
    return chosen


def multipart_etag(parts: Sequence[PartInfo]) -> str:
    joined = b"".join(bytes.fromhex(part.etag.strip('"')) for part in parts)
    return f'"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}"'


def complete(
    mount: Mount,
    settings: S3Settings,
    upload: UploadInfo,
    requested: Sequence[tuple[int, str]],
) -> tuple[str, os.stat_result]:
    """Assemble the object; answers its ETag and the stat of the new file."""
    obj = resolve(mount, upload.key)
    chosen = _check_parts(requested, list_parts(mount, settings, upload), settings)
    directory = _upload_dir(mount, settings, upload.upload_id)
    make_parents(obj, obj.path.parent)
    target = open_upload(obj.path, fsync=settings.fsync, resource=upload.key)
    try:
        for part in chosen:
            name = f"{part.number:05d}-{part.etag.strip(chr(34))}"
            src = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                copy_range(src, target, 0, part.size, None)
            finally:
                os.close(src)
        etag = multipart_etag(chosen)
        xattrs = xattrs_for(
            etag=etag,
            st=target.stat(),
            content_type=upload.content_type,
            checksums={},
            metadata=upload.metadata,
        )
        st = commit_upload(target, xattrs, upload.key)
    except OSError as exc:
        target.discard()
        raise errors.from_oserror(exc, upload.key) from exc
    except BaseException:
        target.discard()
        raise
    target.release_old()
    shutil.rmtree(directory, ignore_errors=True)
    return etag, st


def abort(mount: Mount, settings: S3Settings, upload: UploadInfo) -> None:
    shutil.rmtree(_upload_dir(mount, settings, upload.upload_id), ignore_errors=True)


def list_uploads(mount: Mount, settings: S3Settings, prefix: str) -> list[UploadInfo]:
    root = staging_root(mount, settings)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise errors.from_oserror(exc, mount.name) from exc
    uploads: list[UploadInfo] = []
    for name in names:
        if not _UPLOAD_ID.fullmatch(name):
            continue
        with contextlib.suppress(errors.NoSuchUpload):
            upload = load(mount, settings, name, None)
            if upload.key.startswith(prefix):
                uploads.append(upload)
    uploads.sort(key=lambda u: (u.key, u.initiated))
    return uploads
