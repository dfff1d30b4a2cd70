"""WebDAV dead properties kept in ``user.*`` extended attributes of the file itself.

A property ``{ns}name`` is stored as the xattr ``user.kubepie.dav.{ns}name`` holding the
property's XML. Properties therefore live and die with the file: ``rename`` keeps them,
``shutil.copy2`` copies them, unlinking removes them, and they survive a server restart with
no database to keep in step. This is the property-manager interface wsgidav calls with a
resource's reference URL; :class:`XattrPropertyManager` maps that URL back to a file through
the provider.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_INSUFFICIENT_STORAGE, DAVError

PREFIX = "user.kubepie.dav."

#: Maps a wsgidav reference URL (and the request's environ, for its cache of checked paths) to
#: the file it names, or None (not a file, e.g. the mount list).
Locator = Callable[[str, Any], str | None]

_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}


def attr_name(prop: str) -> str:
    return PREFIX + prop


def dead_names(path: str) -> list[str]:
    """The dead property names (Clark notation) stored on ``path``."""
    try:
        names = os.listxattr(path)
    except OSError:
        return []
    return [n[len(PREFIX) :] for n in names if n.startswith(PREFIX)]


def copy_dead_properties(src: str, dest: str) -> None:
    """Copy the dead properties of ``src`` onto ``dest`` (best effort, used on PUT replace)."""
    for prop in dead_names(src):
        try:
            os.setxattr(dest, attr_name(prop), os.getxattr(src, attr_name(prop)))
        except OSError:
            continue


class XattrPropertyManager:
    """wsgidav property manager over xattrs (the method names are wsgidav's interface)."""

    def __init__(self, locate: Locator) -> None:
        self._locate = locate

    def __repr__(self) -> str:
        return "XattrPropertyManager()"

    def get_properties(self, norm_url: str, environ: Any = None) -> list[str]:
        path = self._locate(norm_url, environ)
        return dead_names(path) if path else []

    def get_property(self, norm_url: str, name: str, environ: Any = None) -> bytes | None:
        path = self._locate(norm_url, environ)
        if not path:
            return None
        try:
            return os.getxattr(path, attr_name(name))
        except OSError:
            return None

    def write_property(
        self,
        norm_url: str,
        name: str,
        property_value: bytes,
        dry_run: bool = False,
        environ: Any = None,
    ) -> None:
        path = self._locate(norm_url, environ)
        if path is None:
            raise DAVError(HTTP_FORBIDDEN, "properties cannot be set here")
        if dry_run:
            return
        try:
            os.setxattr(path, attr_name(name), property_value)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.E2BIG):
                raise DAVError(HTTP_INSUFFICIENT_STORAGE, "no room for the property") from exc
            raise DAVError(HTTP_FORBIDDEN, f"cannot store property: {exc.strerror}") from exc

    def remove_property(
        self, norm_url: str, name: str, dry_run: bool = False, environ: Any = None
    ) -> None:
        path = self._locate(norm_url, environ)
        if path is None or dry_run:
            return
        try:
            os.removexattr(path, attr_name(name))
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise DAVError(HTTP_FORBIDDEN, f"cannot remove property: {exc.strerror}") from exc

    def remove_properties(self, norm_url: str, environ: Any = None) -> None:
        """Called after a delete: the xattrs went with the file."""

    def copy_properties(self, src_url: str, dest_url: str, environ: Any = None) -> None:
        """``shutil.copy2``/``copystat`` already copied the xattrs; copy again for safety."""
        src, dest = self._locate(src_url, environ), self._locate(dest_url, environ)
        if src and dest:
            copy_dead_properties(src, dest)

    def move_properties(
        self, src_url: str, dest_url: str, with_children: bool, environ: Any = None
    ) -> None:
        """A rename keeps the xattrs, and a cross-device move copies them: nothing to do."""
