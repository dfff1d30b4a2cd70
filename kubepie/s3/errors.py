"""Errors of the S3 API, each carrying its S3 error code and HTTP status.

::

    S3Error                              500 InternalError (base)
    ├── AccessDenied                     403 (EACCES, EPERM, EROFS, ELOOP, read-only mount,
    │                                        expired presigned URL or one valid for more than
    │                                        7 days, paths leaving the mount, wrong secret)
    ├── SignatureDoesNotMatch            403
    ├── RequestTimeTooSkewed             403 more than 15 minutes between client and server
    ├── InvalidAccessKeyId               403
    ├── MissingSecurityHeader            400 no x-amz-content-sha256 with header auth
    ├── AuthorizationHeaderMalformed     400
    ├── AuthorizationQueryParametersError 400
    ├── InvalidRequest                   400
    ├── InvalidArgument                  400 (EILSEQ: a name the filesystem refuses)
    ├── KeyTooLongError                  400 ENAMETOOLONG: a key segment over 255 bytes
    ├── InvalidDigest                    400 Content-MD5 or x-amz-checksum-* is not well-formed
    ├── BadDigest                        400 Content-MD5 or x-amz-checksum-* does not match
    ├── XAmzContentSHA256Mismatch        400
    ├── IncompleteBody                   400 the body ended before its declared length
    ├── MalformedXML                     400
    ├── InvalidPart                      400
    ├── InvalidPartOrder                 400
    ├── EntityTooSmall                   400 a non-final multipart part under 5 MiB
    ├── EntityTooLarge                   400 EFBIG
    ├── NoSuchBucket                     404 no mount of that name
    ├── NoSuchKey                        404 ENOENT, ENOTDIR, EISDIR
    ├── NoSuchUpload                     404
    ├── MethodNotAllowed                 405
    ├── OperationAborted                 409 EEXIST, ENOTEMPTY, EBUSY: the key's path is in a
    │                                        state that conflicts with the request
    ├── PreconditionFailed               412
    ├── InvalidRange                     416
    ├── SlowDown                         503 EMFILE, ENFILE, ENOMEM, EAGAIN
    ├── OperationNotImplemented          501 (code NotImplemented)
    └── InsufficientCapacity             507 ENOSPC and EDQUOT (S3 itself has no such code;
                                             507 follows RFC 4918 and other S3 servers)

:func:`from_oserror` and :func:`from_fileserver` translate filesystem and mount errors.
"""

from __future__ import annotations

import errno

from kubepie.fileserver import errors as fs_errors


class S3Error(Exception):
    """An error answered to the client as an S3 ``<Error>`` document."""

    code = "InternalError"
    status = 500

    def __init__(self, message: str = "", *, resource: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.resource = resource


class AccessDenied(S3Error):
    code, status = "AccessDenied", 403


class SignatureDoesNotMatch(S3Error):
    code, status = "SignatureDoesNotMatch", 403


class RequestTimeTooSkewed(S3Error):
    code, status = "RequestTimeTooSkewed", 403


class InvalidAccessKeyId(S3Error):
    code, status = "InvalidAccessKeyId", 403


class MissingSecurityHeader(S3Error):
    code, status = "MissingSecurityHeader", 400


class AuthorizationHeaderMalformed(S3Error):
    code, status = "AuthorizationHeaderMalformed", 400


class AuthorizationQueryParametersError(S3Error):
    code, status = "AuthorizationQueryParametersError", 400


class InvalidRequest(S3Error):
    code, status = "InvalidRequest", 400


class InvalidArgument(S3Error):
    code, status = "InvalidArgument", 400


class InvalidDigest(S3Error):
    code, status = "InvalidDigest", 400


class BadDigest(S3Error):
    code, status = "BadDigest", 400


class XAmzContentSHA256Mismatch(S3Error):
    code, status = "XAmzContentSHA256Mismatch", 400


class KeyTooLongError(S3Error):
    code, status = "KeyTooLongError", 400


class EntityTooLarge(S3Error):
    code, status = "EntityTooLarge", 400


class OperationAborted(S3Error):
    code, status = "OperationAborted", 409


class SlowDown(S3Error):
    code, status = "SlowDown", 503


class IncompleteBody(S3Error):
    code, status = "IncompleteBody", 400


class MalformedXML(S3Error):
    code, status = "MalformedXML", 400


class InvalidPart(S3Error):
    code, status = "InvalidPart", 400


class InvalidPartOrder(S3Error):
    code, status = "InvalidPartOrder", 400


class EntityTooSmall(S3Error):
    code, status = "EntityTooSmall", 400


class NoSuchBucket(S3Error):
    code, status = "NoSuchBucket", 404


class NoSuchKey(S3Error):
    code, status = "NoSuchKey", 404


class NoSuchUpload(S3Error):
    code, status = "NoSuchUpload", 404


class MethodNotAllowed(S3Error):
    code, status = "MethodNotAllowed", 405


class PreconditionFailed(S3Error):
    code, status = "PreconditionFailed", 412


class InvalidRange(S3Error):
    code, status = "InvalidRange", 416


class OperationNotImplemented(S3Error):
    code, status = "NotImplemented", 501


class InsufficientCapacity(S3Error):
    code, status = "InsufficientCapacity", 507


_ERRNO_MAP: dict[int, type[S3Error]] = {
    errno.EACCES: AccessDenied,
    errno.EPERM: AccessDenied,
    errno.EROFS: AccessDenied,
    errno.ELOOP: AccessDenied,
    errno.ENOENT: NoSuchKey,
    errno.ENOTDIR: NoSuchKey,
    errno.EISDIR: NoSuchKey,
    errno.ENOSPC: InsufficientCapacity,
    errno.EDQUOT: InsufficientCapacity,
    errno.ENAMETOOLONG: KeyTooLongError,
    errno.EILSEQ: InvalidArgument,
    errno.EEXIST: OperationAborted,
    errno.ENOTEMPTY: OperationAborted,
    errno.EBUSY: OperationAborted,
    errno.EFBIG: EntityTooLarge,
    errno.EMFILE: SlowDown,
    errno.ENFILE: SlowDown,
    errno.ENOMEM: SlowDown,
    errno.EAGAIN: SlowDown,
}


def from_oserror(exc: OSError, resource: str = "") -> S3Error:
    """The S3 error for a filesystem error; unknown errnos stay ``InternalError``."""
    kind = _ERRNO_MAP.get(exc.errno or 0, S3Error)
    # strerror only: str(exc) would name the file's path on the server.
    return kind(exc.strerror or kind.code, resource=resource)


_FILESERVER_MAP: dict[type[fs_errors.FileServerError], type[S3Error]] = {
    fs_errors.PathRefused: AccessDenied,
    fs_errors.ReadOnlyMount: AccessDenied,
    fs_errors.AccessDenied: AccessDenied,
    fs_errors.NoSuchMount: NoSuchBucket,
    fs_errors.NotFound: NoSuchKey,
    fs_errors.InsufficientStorage: InsufficientCapacity,
    fs_errors.NameTooLong: KeyTooLongError,
    fs_errors.InvalidName: InvalidArgument,
    fs_errors.Conflict: OperationAborted,
    fs_errors.TooLarge: EntityTooLarge,
    fs_errors.Unavailable: SlowDown,
}


def from_fileserver(exc: fs_errors.FileServerError, resource: str = "") -> S3Error:
    """The S3 error for a mount or confinement error of the file server."""
    kind = _FILESERVER_MAP.get(type(exc), S3Error)
    return kind(str(exc), resource=resource)
