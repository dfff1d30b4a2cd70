"""Multipart uploads staged on the mount's own filesystem (blocking I/O: run in threads).

Layout: ``<mount root>/<staging_dir>-<uid>/<upload id>/upload.json`` describes the upload (key,
start time, content type, user metadata); each part is a file ``<NNNNN>-<md5 hex>``, written
to a temporary file first and renamed to that name once complete, so a part's ETag needs no
xattr and a dropped UploadPart leaves only its temporary file, removed at once. The staging
directory starts with the reserved ``.kubepie-s3`` prefix: listings never show it and no key
can name it. It needs a writable mount root; on a mount whose root the user may not write,
CreateMultipartUpload answers ``AccessDenied``.

The staging directory may lie in a root shared with other users (a group area), so another
user could create it first, or a symlink by its name. It is therefore opened with
``O_NOFOLLOW`` and used only when the open descriptor shows a directory owned by this user with
no access for anyone else (mode ``0700``): otherwise every multipart operation answers
``AccessDenied`` naming the problem, and nothing is written into it. All work inside goes
through that descriptor (``*at`` calls), never through its path.

Complete checks the part list (ascending, every part present with its ETag, all but the last
at least ``min_part_size``), concatenates the parts into a temporary file beside the target
with ``copy_file_range`` (no bytes through Python; reflinks where the filesystem can), stores
the ``md5-of-md5s-N`` ETag, renames the result into place and removes the staging directory.
Abort removes the staging directory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Mapping, Sequence

from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mount
from kubepie.fileserver.uploads import Upload
from kubepie.s3 import errors
from kubepie.s3.models import PartInfo, UploadInfo
from kubepie.s3.objects import (
    ObjectPath,
    closing,
    commit_upload,
    copy_range,
    open_upload,
    resolve,
    xattrs_for,
)
from kubepie.s3.settings import S3Settings

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_FILE = re.compile(r"(\d{5})-([0-9a-f]{32})")
MAX_PART_NUMBER = 10000


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def staging_name(settings: S3Settings) -> str:
    """This user's staging directory name: one per uid, since a group area's root is shared
    by its members and each member's uploads must stay their own."""
    return f"{settings.staging_dir}-{os.getuid()}"


def open_staging(mount: Mount, settings: S3Settings, *, create: bool) -> int:
    """A descriptor of this user's private staging directory in ``mount`` (made when
    ``create``); ``FileNotFoundError`` when it does not exist, ``AccessDenied`` when it is not
    a directory owned by this user and closed to everyone else."""
    name = staging_name(settings)
    try:
        if create:
            with closing(mount.open_dir([])) as root, contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=root)
        fd = mount.open([name], _DIR)
    except FileNotFoundError:
        raise
    except FileServerError as exc:
        raise errors.from_fileserver(exc, mount.name) from exc
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _not_private(mount, name, "it is not a directory") from exc
        raise errors.from_oserror(exc, mount.name) from exc
    st = os.fstat(fd)
    problem = ""
    if not stat.S_ISDIR(st.st_mode):
        problem = "it is not a directory"
    elif st.st_uid != os.geteuid():
        problem = f"it is owned by uid {st.st_uid}"
    elif st.st_mode & 0o077:
        problem = f"its mode is {stat.S_IMODE(st.st_mode):04o}, not 0700"
    if problem:
        os.close(fd)
        raise _not_private(mount, name, problem)
    return fd


def _not_private(mount: Mount, name: str, problem: str) -> errors.S3Error:
    return errors.AccessDenied(
        f"the multipart staging directory {name!r} in bucket {mount.name!r} is not private "
        f"to this user ({problem}); refusing to use it",
        resource=mount.name,
    )


def _check_id(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise errors.NoSuchUpload("The specified upload does not exist.", resource=upload_id)
    return upload_id


def open_upload_dir(mount: Mount, settings: S3Settings, upload_id: str) -> int:
    """A descriptor of the staging directory of ``upload_id``; ``NoSuchUpload`` if none."""
    _check_id(upload_id)
    try:
        with closing(open_staging(mount, settings, create=False)) as staging:
            return os.open(upload_id, _DIR, dir_fd=staging)
    except OSError as exc:
        raise errors.NoSuchUpload(
            "The specified upload does not exist.", resource=upload_id
        ) from exc


def create(
    mount: Mount,
    obj: ObjectPath,
    settings: S3Settings,
    *,
    content_type: str,
    metadata: Mapping[str, str],
) -> str:
    upload_id = secrets.token_hex(16)
    description = {
        "key": obj.key,
        "initiated": time.time(),
        "content_type": content_type,
        "metadata": dict(metadata),
    }
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with closing(open_staging(mount, settings, create=True)) as staging:
            os.mkdir(upload_id, 0o700, dir_fd=staging)
            with (
                closing(os.open(upload_id, _DIR, dir_fd=staging)) as directory,
                closing(os.open("upload.json", flags, 0o600, dir_fd=directory)) as fd,
            ):
                os.write(fd, json.dumps(description).encode())
    except OSError as exc:
        raise errors.from_oserror(exc, obj.key) from exc
    return upload_id


def load(mount: Mount, settings: S3Settings, upload_id: str, key: str | None) -> UploadInfo:
    """The upload ``upload_id`` (for ``key``, when given); ``NoSuchUpload`` otherwise."""
    try:
        with (
            closing(open_upload_dir(mount, settings, upload_id)) as directory,
            closing(os.open("upload.json", _READ, dir_fd=directory)) as fd,
        ):
            description = json.loads(os.read(fd, 1 << 20))
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
    with closing(open_upload_dir(mount, settings, upload.upload_id)) as directory:
        try:
            return Upload(directory, "pending", fsync=settings.fsync)
        except OSError as exc:
            raise errors.from_oserror(exc, upload.key) from exc


def commit_part(part: Upload, number: int, md5_hex: str, resource: str) -> PartInfo:
    """Rename a complete part into place, replacing any earlier upload of the same number."""
    final = f"{number:05d}-{md5_hex}"
    part.name = final
    with closing(os.dup(part.dir_fd)) as directory:
        st = commit_upload(part, None, resource)
        part.release_old()
        for name in os.listdir(directory):
            match = _PART_FILE.fullmatch(name)
            if match and int(match[1]) == number and name != final:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=directory)
    return PartInfo(number, st.st_size, st.st_mtime, f'"{md5_hex}"')


def _parts_in(directory: int) -> list[PartInfo]:
    parts: list[PartInfo] = []
    for name in os.listdir(directory):
        match = _PART_FILE.fullmatch(name)
        if match is None:
            continue
        with contextlib.suppress(OSError):
            st = os.stat(name, dir_fd=directory, follow_symlinks=False)
            parts.append(PartInfo(int(match[1]), st.st_size, st.st_mtime, f'"{match[2]}"'))
    parts.sort(key=lambda part: part.number)
    return parts


def list_parts(mount: Mount, settings: S3Settings, upload: UploadInfo) -> list[PartInfo]:
    with closing(open_upload_dir(mount, settings, upload.upload_id)) as directory:
        try:
            return _parts_in(directory)
        except OSError as exc:
            raise errors.NoSuchUpload("The specified upload does not exist.") from exc


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
    *,
    exclusive: bool = False,
) -> tuple[str, os.stat_result]:
    """Assemble the object; answers its ETag and the stat of the new file. ``exclusive``
    (create-only requests): an existing key is refused and never replaced."""
    obj = resolve(mount, upload.key)
    with closing(open_upload_dir(mount, settings, upload.upload_id)) as directory:
        chosen = _check_parts(requested, _parts_in(directory), settings)
        target = open_upload(obj, fsync=settings.fsync, exclusive=exclusive)
        try:
            for part in chosen:
                name = f"{part.number:05d}-{part.etag.strip(chr(34))}"
                with closing(os.open(name, _READ, dir_fd=directory)) as src:
                    copy_range(src, target, 0, part.size, None)
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
    _remove_upload(mount, settings, upload.upload_id)
    return etag, st


def _remove_upload(mount: Mount, settings: S3Settings, upload_id: str) -> None:
    """Remove an upload's staging directory (descriptor-based, never following a link)."""
    with contextlib.suppress(OSError), closing(open_staging(mount, settings, create=False)) as fd:
        shutil.rmtree(_check_id(upload_id), dir_fd=fd)


def abort(mount: Mount, settings: S3Settings, upload: UploadInfo) -> None:
    _remove_upload(mount, settings, upload.upload_id)


def list_uploads(mount: Mount, settings: S3Settings, prefix: str) -> list[UploadInfo]:
    try:
        with closing(open_staging(mount, settings, create=False)) as staging:
            names = os.listdir(staging)
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
