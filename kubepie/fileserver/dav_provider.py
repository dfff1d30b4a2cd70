"""The wsgidav adapter: a DAV provider over :class:`Mounts`, confined and mount-aware.

URL paths below ``/dav`` are ``/<mount>/<path>``; ``/`` itself is a read-only collection of the
mounts. Every path goes through :meth:`Mount.resolve` (so ``..``, NUL and symlinks leading out
of a mount are refused), writes to a read-only mount are refused, and every ``OSError`` becomes
the DAV status of :func:`kubepie.fileserver.errors.from_oserror` (403, 404, 507) instead of a
500. A PUT writes a temporary file next to its target and renames it into place only once the
whole body has arrived; a short or failed upload removes the temporary file and leaves the
previous version untouched (:mod:`kubepie.fileserver.uploads`). Only the ``dav_*`` modules
import wsgidav.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVProvider
from wsgidav.fs_dav_provider import FileResource, FolderResource

from kubepie.fileserver.dav_listing import inside, listed
from kubepie.fileserver.errors import FileServerError, NoSuchMount, from_oserror
from kubepie.fileserver.mounts import Mount, Mounts, check_segment, split_path
from kubepie.fileserver.uploads import Upload

#: environ key of the per-request map "DAV path → checked file path". It lets the property
#: manager (which only gets a URL) reuse the confinement check made for the same request
#: instead of resolving every entry of a large PROPFIND twice. Never kept across requests.
_CHECKED = "kubepie.checked_paths"

Environ = dict[str, Any]


def dav_error(exc: FileServerError) -> DAVError:
    return DAVError(exc.status, str(exc))


@contextlib.contextmanager
def os_errors(what: str) -> Iterator[None]:
    """Turn an ``OSError`` (or one of our errors) raised inside into the matching DAVError."""
    try:
        yield
    except OSError as exc:
        raise dav_error(from_oserror(exc, what)) from exc
    except FileServerError as exc:
        raise dav_error(exc) from exc


def etag_of(st: os.stat_result) -> str:
    """A strong entity tag from inode, mtime (ns) and size."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


class MountsProvider(DAVProvider):  # type: ignore[misc]
    """Serves ``/<mount>/<path>`` for each mount; the provider is never read-only as a whole."""

    def __init__(self, mounts: Mounts) -> None:
        super().__init__()
        self.mounts = mounts
        self.readonly = False
        self.fs_opts = {"follow_symlinks": True}

    def __repr__(self) -> str:
        return f"MountsProvider({list(self.mounts)!r})"

    def is_readonly(self) -> bool:
        return False

    def locate(self, path: str) -> tuple[Mount, Path] | None:
        """``(mount, file path)`` for a DAV path, None for ``/``; raises our errors."""
        segments = split_path(path)
        if not segments:
            return None
        mount = self.mounts[segments[0]]
        return mount, mount.resolve(segments[1:])

    def _loc_to_file_path(self, path: str, environ: Environ | None = None) -> str:
        with os_errors(path):
            located = self.locate(path)
        if located is None:
            raise DAVError(HTTP_FORBIDDEN, "the list of mounts is not a directory")
        return str(located[1])

    def file_for_ref_url(self, ref_url: str, environ: Environ | None = None) -> str | None:
        """The file behind a wsgidav reference URL, or None (the mount list, bad paths)."""
        path = self.ref_url_to_path(ref_url)
        if environ is not None:
            checked = environ.get(_CHECKED, {}).get(path.rstrip("/"))
            if checked is not None:
                return str(checked)
        try:
            located = self.locate(path)
        except FileServerError:
            return None
        return str(located[1]) if located else None

    def resource(self, path: str, environ: Environ, mount: Mount, file_path: str) -> Any:
        """The resource for an already confined ``file_path``, or None if it does not exist."""
        try:
            st = os.stat(file_path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise dav_error(from_oserror(exc, path)) from exc
        environ.setdefault(_CHECKED, {})[path.rstrip("/")] = file_path
        if stat.S_ISDIR(st.st_mode):
            return DavFolder(path, environ, mount, file_path, st)
        if stat.S_ISREG(st.st_mode):
            return DavFile(path, environ, mount, file_path, st)
        raise DAVError(HTTP_FORBIDDEN, "not a regular file or directory")

    def get_resource_inst(self, path: str | None, environ: Environ) -> Any:
        self._count_get_resource_inst += 1
        if path is None:  # wsgidav asks for the parent of "/"
            return None
        try:
            located = self.locate(path)
        except NoSuchMount:
            return None
        except FileServerError as exc:
            raise dav_error(exc) from exc
        if located is None:
            return MountList(path, environ)
        mount, file_path = located
        return self.resource(path, environ, mount, str(file_path))


def _writable(environ: Environ, *paths: str) -> None:
    """Refuse (403) when any of ``paths`` lies in a read-only mount."""
    provider: MountsProvider = environ["wsgidav.provider"]
    for path in paths:
        with os_errors(path):
            located = provider.locate(path)
            if located is None:
                raise DAVError(HTTP_FORBIDDEN, "the list of mounts cannot be changed")
            located[0].check_writable()


class _MountResource:
    """What files and folders in a mount share: write checks on dates and dead properties,
    and the reference URL cached (wsgidav asks for it about ten times per PROPFIND entry)."""

    environ: Environ
    path: str

    def get_ref_url(self) -> str:
        url: str | None = self.__dict__.get("_ref_url")
        if url is None:
            url = super().get_ref_url()  # type: ignore[misc]
            self.__dict__["_ref_url"] = url
        return url

    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        _writable(self.environ, dest_path)
        with os_errors(dest_path):
            result: bool = super().set_last_modified(  # type: ignore[misc]
                dest_path, time_stamp, dry_run=dry_run
            )
        return result

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        _writable(self.environ, self.path)
        return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]


class DavFile(_MountResource, FileResource):  # type: ignore[misc]
    """A regular file in a mount; ``st`` None means a PUT target that does not exist yet."""

    def __init__(
        self, path: str, environ: Environ, mount: Mount, file_path: str, st: os.stat_result | None
    ) -> None:
        super(FileResource, self).__init__(path, environ)
        self.mount = mount
        self._file_path = file_path
        self.file_stat = st
        self.name = os.path.basename(file_path)
        self._upload: Upload | None = None

    def get_content_length(self) -> int:
        return self.file_stat.st_size if self.file_stat else 0

    def get_creation_date(self) -> int | None:
        return int(self.file_stat.st_ctime) if self.file_stat else None

    def get_last_modified(self) -> int | None:
        # Whole seconds, as HTTP dates have them (conditionals compare against this).
        return int(self.file_stat.st_mtime) if self.file_stat else None

    def get_etag(self) -> str | None:
        return etag_of(self.file_stat) if self.file_stat else None

    def get_content_type(self) -> str:
        kind: str | None = self.__dict__.get("_content_type")
        if kind is None:
            kind = self.__dict__["_content_type"] = super().get_content_type()
        return kind

    def get_content(self) -> Any:
        with os_errors(self.path):
            return open(self._file_path, "rb", buffering=0)

    def begin_write(self, *, content_type: str | None = None) -> Upload:
        _writable(self.environ, self.path)
        with os_errors(self.path):
            self._upload = Upload(self._file_path)
        return self._upload

    def end_write(self, *, with_errors: bool) -> None:
        upload, self._upload = self._upload, None
        if upload is None:
            return
        upload.close()
        expected = self.environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in self.environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not with_errors and not chunked and expected.isdigit():
            with_errors = int(expected) != upload.written
            if with_errors:
                upload.discard()
                raise DAVError(HTTP_BAD_REQUEST, "body shorter than its Content-Length")
        if with_errors:
            upload.discard()
            return
        with os_errors(self.path):
            self.file_stat = upload.commit()
        upload.release_old()

    def delete(self) -> None:
        _writable(self.environ, self.path)
        with os_errors(self.path):
            super().delete()

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        _writable(self.environ, dest_path, *([self.path] if is_move else []))
        with os_errors(dest_path):
            super().copy_move_single(dest_path, is_move=is_move)

    def move_recursive(self, dest_path: str) -> None:
        _writable(self.environ, self.path, dest_path)
        with os_errors(dest_path):
            super().move_recursive(dest_path)


class DavFolder(_MountResource, FolderResource):  # type: ignore[misc]
    """A directory in a mount (the mount root included, which cannot be deleted or moved)."""

    def __init__(
        self, path: str, environ: Environ, mount: Mount, file_path: str, st: os.stat_result
    ) -> None:
        super(FolderResource, self).__init__(path, environ)
        self.mount = mount
        self._file_path = file_path
        self.file_stat = st
        self.name = os.path.basename(file_path)
        self.is_mount_root = len(split_path(path)) == 1

    def get_display_name(self) -> str:
        return self.mount.name if self.is_mount_root else self.name

    def get_member_names(self) -> list[str]:
        names: list[str] = []
        real_root = os.path.realpath(self.mount.root)
        with os_errors(self.path), os.scandir(self._file_path) as entries:
            for entry in entries:
                if not listed(entry.name):
                    continue
                if entry.is_symlink() and not inside(real_root, entry.path):
                    continue
                try:
                    if entry.is_dir() or entry.is_file():
                        names.append(entry.name)
                except OSError:
                    continue
        return names

    def get_member(self, name: str) -> Any:
        path = util.join_uri(self.path, name)
        child = os.path.join(self._file_path, name)
        try:
            check_segment(name)
            plain = not stat.S_ISLNK(os.lstat(child).st_mode)
        except (FileServerError, OSError):
            plain = False
        if plain:  # this directory is confined, so a non-symlink entry of it is too
            return self.provider.resource(path, self.environ, self.mount, child)
        return self.provider.get_resource_inst(path, self.environ)

    def create_empty_resource(self, name: str) -> Any:
        path = util.join_uri(self.path, name)
        _writable(self.environ, path)
        file_path = self.provider._loc_to_file_path(path, self.environ)
        if self.environ.get("REQUEST_METHOD") == "PUT":
            # Nothing on disk until the whole body has arrived (see DavFile.end_write).
            return DavFile(path, self.environ, self.mount, file_path, None)
        with os_errors(path):
            os.close(os.open(file_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        return self.provider.get_resource_inst(path, self.environ)

    def create_collection(self, name: str) -> None:
        path = util.join_uri(self.path, name)
        _writable(self.environ, path)
        with os_errors(path):
            super().create_collection(name)

    def _not_root(self) -> None:
        if self.is_mount_root:
            raise DAVError(HTTP_FORBIDDEN, "a mount root cannot be deleted or moved")

    def delete(self) -> None:
        self._not_root()
        _writable(self.environ, self.path)
        with os_errors(self.path):
            super().delete()

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        if is_move:
            self._not_root()
        _writable(self.environ, dest_path, *([self.path] if is_move else []))
        with os_errors(dest_path):
            super().copy_move_single(dest_path, is_move=is_move)

    def move_recursive(self, dest_path: str) -> None:
        self._not_root()
        _writable(self.environ, self.path, dest_path)
        with os_errors(dest_path):
            super().move_recursive(dest_path)


class MountList(DAVCollection):  # type: ignore[misc]
    """``/dav/``: the mounts as a read-only collection (no files, no properties, no locks)."""

    def get_member_names(self) -> list[str]:
        return list(self.provider.mounts)

    def get_member(self, name: str) -> Any:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def get_display_name(self) -> str:
        return "dav"

    def prevent_locking(self) -> bool:
        return True

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise DAVError(HTTP_FORBIDDEN, "the list of mounts cannot be changed")

    handle_delete = handle_copy = handle_move = delete = _refuse
    create_empty_resource = create_collection = copy_move_single = move_recursive = _refuse
    set_property_value = set_last_modified = _refuse
