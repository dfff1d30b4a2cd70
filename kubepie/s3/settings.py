"""Settings of the S3 API, read once where the file server is assembled."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class S3Settings:
    #: Region answered by GetBucketLocation. Signatures for any region are accepted: the
    #: region is bound into the signing key, so only the secret's holder can sign at all.
    region: str = "us-east-1"
    #: Owner ID and display name in listings (the served user's name is a good choice).
    owner: str = "kubepie"
    #: Bytes per read and write while streaming bodies. 1 MiB: below it, per-chunk Python
    #: overhead dominates (64 KiB chunks stream at a sixth of the speed on a 2-core machine).
    chunk_size: int = 1 << 20
    #: Smallest multipart part except the last, in bytes (S3's own 5 MiB).
    min_part_size: int = 5 << 20
    #: Most keys a listing page returns, whatever max-keys asks (S3's own 1000).
    max_keys: int = 1000
    #: Largest DeleteObjects / CompleteMultipartUpload XML body accepted, in bytes.
    max_xml_body: int = 2 << 20
    #: fsync written objects before they are renamed into place. Off by default: the rename
    #: already guarantees that readers never see a partial object; fsync adds crash
    #: durability at the cost of waiting for the disk on every PUT.
    fsync: bool = False
    #: ETags of single-request uploads are the MD5 of the content, as S3 clients expect (rclone
    #: compares them with its own MD5). Computing it costs about 1.4 s of one core per GiB, the
    #: largest CPU cost of a PUT after receiving; off, such uploads get the derived
    #: ``"...-1"`` ETag of files written by other means (see :mod:`kubepie.s3.objects`), and a
    #: Content-MD5 sent by the client is still checked. Multipart parts always hash.
    md5_etags: bool = True
    #: Hidden directory at each mount root that stages multipart uploads, suffixed with
    #: ``-<uid>`` (members of a group area each keep their own); never listed.
    staging_dir: str = ".kubepie-s3-uploads"
