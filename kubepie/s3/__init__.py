"""The S3 API of the per-user file server: path-style, one bucket per storage mount.

Layers, one direction:

* entry: :mod:`kubepie.s3.app` (ASGI callable, routing, the one place errors are rendered;
  :func:`kubepie.s3.app.create_s3_app` builds it);
* operations: :mod:`kubepie.s3.bucket_ops`, :mod:`kubepie.s3.object_ops`,
  :mod:`kubepie.s3.multipart_ops` (one handler per S3 operation, on a
  :class:`kubepie.s3.context.Context`), :mod:`kubepie.s3.auth` (the ``S3Authenticator`` plug
  point), :mod:`kubepie.s3.body` (request bodies);
* storage (blocking POSIX I/O, run in worker threads): :mod:`kubepie.s3.objects`,
  :mod:`kubepie.s3.listing`, :mod:`kubepie.s3.multipart`;
* pure protocol, no I/O: :mod:`kubepie.s3.sigv4`, :mod:`kubepie.s3.sigv2`,
  :mod:`kubepie.s3.chunked`, :mod:`kubepie.s3.checksums`, :mod:`kubepie.s3.conditions`,
  :mod:`kubepie.s3.xml`; data: :mod:`kubepie.s3.models`, :mod:`kubepie.s3.settings`,
  :mod:`kubepie.s3.errors`.

It imports :mod:`kubepie.fileserver.mounts` (confinement) and :mod:`kubepie.fileserver.errors`,
never the WebDAV side. The router may import :mod:`kubepie.s3.sigv4` (and ``sigv2``) to verify
app credentials. ``google_crc32c`` is imported only in :mod:`kubepie.s3.checksums`.
"""
