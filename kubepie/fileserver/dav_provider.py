"""The wsgidav adapter: a DAV provider over :class:`Mounts`, confined and mount-aware.

URL paths below ``/dav`` are ``/<mount>/<path>``; ``/`` itself is a read-only collection of the
mounts. A resource keeps its mount and path segments, never a filesystem path: every operation
resolves them beneath the mount root in one step (:meth:`Mount.open`, :meth:`Mount.open_parent`)
and then works on descriptors (``*at`` calls, :mod:`kubepie.fileserver.fdops`), so ``..``, NUL
and symlinks leading out of a mount are refused even when swapped in during the request. DELETE
and MOVE of a symlink act on the link itself. Writes to a read-only mount are refused, and
every ``OSError`` becomes the DAV status of :func:`kubepie.fileserver.errors.from_oserror`
(403, 404, 507) instead of a 500. A PUT writes a temporary file next to its target and renames
it into place only once the whole body has arrived; a short or failed upload removes the
temporary file and leaves the previous version untouched (:mod:`kubepie.fileserver.uploads`).

Create-only requests (the router's :data:`kubepie.fileserver.auth.CREATE_ONLY_HEADER`) never
replace or delete an existing name: PUT over a file, DELETE, PROPPATCH, LOCK, MOVE, and COPY
onto an existing destination are refused, and new files are renamed into place with
``RENAME_NOREPLACE``. Only the ``dav_*`` modules import wsgidav.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import Any

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_PRECONDITION_FAILED,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVProvider
from wsgidav.fs_dav_provider import FileResource, FolderResource

from kubepie.fileserver.beneath import fd_path, rename_noreplace
from kubepie.fileserver.dav_listing import listed
from kubepie.fileserver.errors import FileServerError, NoSuchMount, PathRefused, from_oserror
from kubepie.fileserver.fdops import (
    Descriptors,
    copy_attributes,
    copy_content,
    lstat_at,
    mount_id,
    remove_at,
)
from kubepie.fileserver.mounts import Mount, Mounts, check_segment, split_path
from kubepie.fileserver.uploads import Upload

#: environ key of the per-request :class:`Descriptors`: the files the property manager (which
#: only gets a URL) works on, opened beneath their mount once per request. Never kept across
#: requests.
_OPENED = "kubepie.opened"
#: The create-only header as it appears in a WSGI environ.
_CREATE_ONLY = "HTTP_X_KUBEPIE_CREATE_ONLY"
_READ = os.O_RDONLY | os.O_NONBLOCK

Environ = dict[str, Any]
Located = tuple[Mount, list[str]]


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


@contextlib.contextmanager
def closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def etag_of(st: os.stat_result) -> str:
    """A strong entity tag from inode, mtime (ns) and size."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def create_only(environ: Environ) -> bool:
    """Whether this request may only create names (never replace or delete one)."""
    return str(environ.get(_CREATE_ONLY, "")).strip() == "1"


def refuse_if_create_only(environ: Environ, what: str) -> None:
    if create_only(environ):
        raise DAVError(HTTP_FORBIDDEN, f"create only: {what} is not allowed")


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

    def locate(self, path: str) -> Located | None:
        """``(mount, path segments inside it)`` for a DAV path, None for ``/``; raises our
        errors. Nothing is resolved on disk here."""
        segments = split_path(path)
        if not segments:
            return None
        return self.mounts[segments[0]], segments[1:]

    def located(self, path: str) -> Located:
        """:meth:`locate` for a path that must lie inside a mount (DAVError otherwise)."""
        with os_errors(path):
            found = self.locate(path)
        if found is None:
            raise DAVError(HTTP_FORBIDDEN, "the list of mounts cannot be changed")
        return found

    def _loc_to_file_path(self, path: str, environ: Environ | None = None) -> str:
        """A display path only (wsgidav's interface): no operation here uses it."""
        mount, segments = self.located(path)
        with os_errors(path):
            return str(mount.resolve(segments))

    def file_for_ref_url(self, ref_url: str, environ: Environ | None = None) -> str | None:
        """A path naming the file behind a wsgidav reference URL *as opened* now, beneath its
        mount (``/proc/self/fd/N`` of a descriptor kept for the request), or None (the mount
        list, bad paths, no request)."""
        if environ is None:
            return None
        path = self.ref_url_to_path(ref_url).rstrip("/") or "/"
        opened: Descriptors = environ.setdefault(_OPENED, Descriptors())
        known = opened.get(path)
        if known is not None:
            return known
        try:
            found = self.locate(path)
            if found is None:
                return None
            fd = found[0].open(found[1], os.O_PATH)
        except (FileServerError, OSError):
            return None
        return opened.put(path, fd)

    def resource(
        self,
        path: str,
        environ: Environ,
        mount: Mount,
        segments: list[str],
        st: os.stat_result | None = None,
    ) -> Any:
        """The resource for ``segments`` of ``mount``, or None if it does not exist; ``st``
        when the caller has it already (from a directory descriptor resolved beneath)."""
        try:
            if st is None:
                st = mount.stat(segments)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise dav_error(from_oserror(exc, path)) from exc
        except FileServerError as exc:
            raise dav_error(exc) from exc
        if stat.S_ISDIR(st.st_mode):
            return DavFolder(path, environ, mount, segments, st)
        if stat.S_ISREG(st.st_mode):
            return DavFile(path, environ, mount, segments, st)
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
        return self.resource(path, environ, *located)


def _writable(environ: Environ, *paths: str) -> None:
    """Refuse (403) when any of ``paths`` lies in a read-only mount."""
    provider: MountsProvider = environ["wsgidav.provider"]
    for path in paths:
        mount, _ = provider.located(path)
        with os_errors(path):
            mount.check_writable()


def _rename(src: Located, dest: Located, what: str) -> None:
    """Rename the name ``src`` to ``dest`` (which must not exist: ``RENAME_NOREPLACE``)."""
    with os_errors(what):
        src_dir, src_name = src[0].open_parent(src[1])
        with closing(src_dir):
            dest_dir, dest_name = dest[0].open_parent(dest[1])
            with closing(dest_dir):
                rename_noreplace(src_dir, src_name, dest_dir, dest_name)


class _MountResource:
    """What files and folders in a mount share: the mount and segments they stand for, write
    checks on dates and dead properties, create-only refusals, moves by one rename, and the
    reference URL cached (wsgidav asks for it about ten times per PROPFIND entry)."""

    environ: Environ
    path: str
    provider: MountsProvider
    mount: Mount
    segments: list[str]

    def get_ref_url(self) -> str:
        url: str | None = self.__dict__.get("_ref_url")
        if url is None:
            url = super().get_ref_url()  # type: ignore[misc]
            self.__dict__["_ref_url"] = url
        return url

    def is_link(self) -> bool:
        try:
            directory, name = self.mount.open_parent(self.segments)
        except (OSError, FileServerError):
            return False
        with closing(directory):
            try:
                return stat.S_ISLNK(lstat_at(directory, name).st_mode)
            except OSError:
                return False

    def prevent_locking(self) -> bool:
        return create_only(self.environ)  # a LOCK would hold an existing name

    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        _writable(self.environ, dest_path)
        refuse_if_create_only(self.environ, "changing a date")
        secs = time_stamp if isinstance(time_stamp, int) else util.parse_time_string(time_stamp)
        if not dry_run:
            mount, segments = self.provider.located(dest_path)
            with os_errors(dest_path), closing(mount.open(segments, os.O_PATH)) as fd:
                os.utime(fd_path(fd), (secs, secs))
        return True

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        _writable(self.environ, self.path)
        refuse_if_create_only(self.environ, "changing properties")
        return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        if create_only(self.environ):
            mount, segments = self.provider.located(dest_path)
            try:
                mount.stat(segments)
            except FileNotFoundError:
                pass
            except (OSError, FileServerError) as exc:
                raise DAVError(HTTP_FORBIDDEN, "create only: cannot check the destination") from exc
            else:
                raise DAVError(HTTP_PRECONDITION_FAILED, "create only: the destination exists")
        return False  # wsgidav copies, calling copy_move_single

    def handle_move(self, dest_path: str) -> bool:
        refuse_if_create_only(self.environ, "moving (it removes the source name)")
        return False

    def support_recursive_move(self, dest_path: str) -> bool:
        """One rename when source and destination lie on the same mount (vfsmount)."""
        mount, segments = self.provider.located(dest_path)
        try:
            src_dir, _ = self.mount.open_parent(self.segments)
            with closing(src_dir):
                dest_dir, _ = mount.open_parent(segments)
                with closing(dest_dir):
                    here = mount_id(src_dir)
                    return here >= 0 and here == mount_id(dest_dir)
        except (OSError, FileServerError):
            return False

    def move_recursive(self, dest_path: str) -> None:
        _writable(self.environ, self.path, dest_path)
        refuse_if_create_only(self.environ, "moving")
        # Dead properties are xattrs: they move with the file.
        _rename((self.mount, self.segments), self.provider.located(dest_path), dest_path)

    def _delete_name(self) -> None:
        """Remove this name (a symlink: the link itself) and its locks."""
        _writable(self.environ, self.path)
        refuse_if_create_only(self.environ, "DELETE")
        with os_errors(self.path):
            directory, name = self.mount.open_parent(self.segments)
            with closing(directory):
                remove_at(directory, name)
        self.remove_all_properties(recursive=True)  # type: ignore[attr-defined]
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]


class DavFile(_MountResource, FileResource):  # type: ignore[misc]
    """A regular file in a mount; ``st`` None means a PUT target that does not exist yet."""

    def __init__(
        self,
        path: str,
        environ: Environ,
        mount: Mount,
        segments: list[str],
        st: os.stat_result | None,
    ) -> None:
        super(FileResource, self).__init__(path, environ)
        self.mount = mount
        self.segments = segments
        self.file_stat = st
        self.name = segments[-1]
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
            fd = self.mount.open(self.segments, _READ)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise DAVError(HTTP_FORBIDDEN, "not a regular file")
                return open(fd, "rb", buffering=0)
            except BaseException:
                os.close(fd)
                raise

    def begin_write(self, *, content_type: str | None = None) -> Upload:
        _writable(self.environ, self.path)
        exclusive = create_only(self.environ)
        if exclusive and self.file_stat is not None:
            raise DAVError(HTTP_FORBIDDEN, "create only: the file exists already")
        with os_errors(self.path):
            directory, name = self.mount.open_parent(self.segments)
            with closing(directory):
                self._upload = Upload(directory, name, exclusive=exclusive)
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
        self._delete_name()

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        _writable(self.environ, dest_path, *([self.path] if is_move else []))
        if is_move:
            refuse_if_create_only(self.environ, "moving")
        mount, segments = self.provider.located(dest_path)
        exclusive = create_only(self.environ)
        with os_errors(dest_path), closing(self.mount.open(self.segments, _READ)) as src:
            if not stat.S_ISREG(os.fstat(src).st_mode):
                raise DAVError(HTTP_FORBIDDEN, "not a regular file")
            directory, name = mount.open_parent(segments)
            with closing(directory):
                upload = Upload(directory, name, exclusive=exclusive)
            try:
                copy_content(src, upload.fd)
            except BaseException:
                upload.discard()
                raise
            upload.commit(lambda fd: copy_attributes(src, fd))
            upload.release_old()


class DavFolder(_MountResource, FolderResource):  # type: ignore[misc]
    """A directory in a mount (the mount root included, which cannot be deleted or moved)."""

    def __init__(
        self, path: str, environ: Environ, mount: Mount, segments: list[str], st: os.stat_result
    ) -> None:
        super(FolderResource, self).__init__(path, environ)
        self.mount = mount
        self.segments = segments
        self.file_stat = st
        self.name = segments[-1] if segments else mount.name
        self.is_mount_root = not segments

    def get_display_name(self) -> str:
        return self.mount.name if self.is_mount_root else self.name

    def get_used_bytes(self) -> int:
        with os_errors(self.path), closing(self.mount.open(self.segments, os.O_PATH)) as fd:
            vfs = os.fstatvfs(fd)
        return (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize

    def get_available_bytes(self) -> int:
        with os_errors(self.path), closing(self.mount.open(self.segments, os.O_PATH)) as fd:
            vfs = os.fstatvfs(fd)
        return vfs.f_bavail * vfs.f_frsize

    def get_member_names(self) -> list[str]:
        """The listed members; the ``stat`` of each plain (non-symlink) one is kept for
        :meth:`get_member`, taken relative to this directory's descriptor (a PROPFIND then
        resolves no member path again)."""
        names: list[str] = []
        stats: dict[str, os.stat_result] = {}
        self.__dict__["_member_stats"] = stats
        flags = os.O_RDONLY | os.O_DIRECTORY
        with (
            os_errors(self.path),
            closing(self.mount.open(self.segments, flags)) as fd,
            os.scandir(fd) as entries,
        ):
            for entry in entries:
                if not listed(entry.name):
                    continue
                try:
                    if entry.is_symlink():
                        if not self._kept_link(entry.name):
                            continue
                    elif entry.is_dir(follow_symlinks=False) or entry.is_file(
                        follow_symlinks=False
                    ):
                        stats[entry.name] = entry.stat(follow_symlinks=False)
                    else:
                        continue
                except OSError:
                    continue
                names.append(entry.name)
        return names

    def _kept_link(self, name: str) -> bool:
        """Whether a symlink here leads to a file or directory inside the mount."""
        try:
            st = self.mount.stat([*self.segments, name])
        except (OSError, FileServerError):
            return False
        return stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)

    def get_member(self, name: str) -> Any:
        path = util.join_uri(self.path, name)
        try:
            check_segment(name)
        except FileServerError:
            return self.provider.get_resource_inst(path, self.environ)
        known: dict[str, os.stat_result] = self.__dict__.get("_member_stats", {})
        segments = [*self.segments, name]
        return self.provider.resource(
            path, self.environ, self.mount, segments, known.pop(name, None)
        )

    def _in_here(self, action: Any, what: str) -> Any:
        with os_errors(what), closing(self.mount.open_dir(self.segments)) as directory:
            return action(directory)

    def create_empty_resource(self, name: str) -> Any:
        path = util.join_uri(self.path, name)
        _writable(self.environ, path)
        segments = [*self.segments, check_name(name)]
        if self.environ.get("REQUEST_METHOD") == "PUT":
            # Nothing on disk until the whole body has arrived (see DavFile.end_write).
            return DavFile(path, self.environ, self.mount, segments, None)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._in_here(lambda d: os.close(os.open(name, flags, 0o666, dir_fd=d)), path)
        return self.provider.get_resource_inst(path, self.environ)

    def create_collection(self, name: str) -> None:
        path = util.join_uri(self.path, name)
        _writable(self.environ, path)
        check_name(name)
        self._in_here(lambda d: os.mkdir(name, 0o777, dir_fd=d), path)

    def _not_root(self) -> None:
        if self.is_mount_root:
            raise DAVError(HTTP_FORBIDDEN, "a mount root cannot be deleted or moved")

    def support_recursive_delete(self) -> bool:
        return True  # remove_at: one descriptor-based rmtree

    def delete(self) -> None:
        self._not_root()
        self._delete_name()

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        if is_move:
            self._not_root()
            refuse_if_create_only(self.environ, "moving")
        _writable(self.environ, dest_path, *([self.path] if is_move else []))
        mount, segments = self.provider.located(dest_path)
        with os_errors(dest_path):
            directory, name = mount.open_parent(segments)
            with closing(directory):
                try:
                    os.mkdir(name, 0o700, dir_fd=directory)
                except FileExistsError:
                    if create_only(self.environ):
                        raise DAVError(HTTP_FORBIDDEN, "create only: the folder exists") from None
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                dest = os.open(name, flags, dir_fd=directory)
            with closing(dest), closing(self.mount.open(self.segments, _READ)) as src:
                copy_attributes(src, dest)

    def move_recursive(self, dest_path: str) -> None:
        self._not_root()
        super().move_recursive(dest_path)


def check_name(name: str) -> str:
    """``name`` if it is one safe path segment, else DAVError 403."""
    try:
        return check_segment(name)
    except PathRefused as exc:
        raise dav_error(exc) from exc


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
