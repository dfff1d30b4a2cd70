"""The S3 API of the per-user file server: path-style, one bucket per storage mount.

Layers, one direction: :mod:`kubepie.s3.app` (ASGI entry, routing) → :mod:`kubepie.s3.objects`,
:mod:`kubepie.s3.multipart`, :mod:`kubepie.s3.listing` (POSIX storage) and
:mod:`kubepie.s3.auth` (authenticators) → pure protocol modules :mod:`kubepie.s3.sigv4`,
:mod:`kubepie.s3.chunked`, :mod:`kubepie.s3.checksums`, :mod:`kubepie.s3.xml` (no I/O) →
:mod:`kubepie.s3.errors`. It imports :mod:`kubepie.fileserver.mounts` for confinement, never
the WebDAV side; the router may import :mod:`kubepie.s3.sigv4` to verify app credentials.
"""
