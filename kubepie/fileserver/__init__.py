"""The per-user file server: WebDAV, HTTPS and S3 over the user's storage mounts.

Runs with one user's UID, GID and supplementary GIDs, so the kernel decides what may be read or
written; this package adds mount confinement on top (paths never leave a mount root, whatever
the kernel would allow). It may import ``identity`` (for :class:`identity.models.Identity`) and
other ``kubepie`` modules of equal or lower layer; never ``hubintegration`` or ``gpu``.
"""
