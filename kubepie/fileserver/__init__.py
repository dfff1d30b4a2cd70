"""The per-user file server: WebDAV, HTTPS and S3 over the user's storage mounts.

Runs with one user's UID, GID and supplementary GIDs, so the kernel decides what may be read or
written; this package adds mount confinement on top (paths never leave a mount root, whatever
the kernel would allow). It may import ``identity`` (for :class:`identity.models.Identity`) and
other ``kubepie`` modules of equal or lower layer; never ``hubintegration`` or ``gpu``.

Modules, from the entry point down:

* ``launch``, ``server``: command line → :class:`settings.FileServerSettings`; bind the
  listeners, drop privileges (``privileges``), serve WebDAV and S3 in one uvicorn loop;
* ``auth``: Basic (standalone) or per-server secret (behind the router) in front of WebDAV;
* ``dav_app``: the ``/dav`` front (raw-path checks, fast paths ``dav_get`` / ``dav_put``, HTML
  listings ``dav_listing``) and wsgidav through a2wsgi; ``dav_provider``, ``dav_props``: the
  wsgidav adapter (provider over the mounts, dead properties in xattrs); only ``dav_*`` modules
  import wsgidav;
* ``uploads``: temp file + rename for every PUT; ``mounts``: confinement (pure, apart from
  resolving symlinks); ``errors``: the error tree and the POSIX mapping.
"""
