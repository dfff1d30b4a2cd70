"""The file-server issue's boto3 S3 suite, run unchanged through the router.

The suite's tests are imported here and run against an ``S3Server``-shaped handle on the
router: plain HTTP straight to the router's S3 listener, HTTPS (which boto3 needs to send
``aws-chunked`` bodies with checksum trailers) through a real nginx terminating TLS in front
of it, and an app credential of dave minted at the router in place of the suite's static key.
The tests that are about the standalone server's own key, or that assume the server runs as
the test process's uid, are not imported (see ``_SUITE``).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from mypy_boto3_s3 import S3Client

from tests.kubepie.router.conftest import Router
from tests.kubepie.s3 import test_auth, test_listing, test_multipart, test_objects
from tests.support import ManagedProcess, free_port, self_signed_certificate

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""

#: The suite's tests that hold through the router, by module. Left out: those about the
#: standalone server's own static key, and those that assume the server runs as the test
#: process's uid (its multipart staging directory is named after that uid; a root-owned file
#: it must replace). Listed rather than globbed, so that a test added to the suite with such an
#: assumption does not start failing here unnoticed.
_SUITE = {
    test_objects: (
        "test_put_get_round_trip_with_trailer_checksum_and_metadata",
        "test_put_over_plain_http_signs_the_payload",
        "test_put_with_chosen_checksum_algorithm",
        "test_put_with_crc32c_header_value",
        "test_wrong_content_md5_and_checksum_are_refused",
        "test_ranged_gets",
        "test_conditional_gets",
        "test_missing_objects_and_buckets",
        "test_buckets_are_the_mounts",
        "test_read_only_mount_refuses_writes",
        "test_copy_object_with_both_metadata_directives",
        "test_delete_object_and_delete_objects",
        "test_folder_markers_are_directories",
        "test_confinement",
    ),
    test_listing: (
        "test_full_listing_is_in_s3_order_across_pages",
        "test_delimiter_listing_with_pagination",
        "test_prefix_inside_a_directory_and_start_after",
        "test_list_objects_v1_with_marker",
        "test_keys_that_need_url_encoding",
    ),
    test_multipart: (
        "test_complete_refuses_bad_part_lists",
        "test_upload_part_copy",
        "test_boto3_managed_transfer_in_parallel_parts",
    ),
    test_auth: (
        "test_wrong_secret_and_unknown_key_are_refused",
        "test_anonymous_request_is_refused",
        "test_request_signed_twenty_minutes_ago_is_refused",
        "test_presigned_get_and_put",
        "test_sigv4_presigned_url_after_expiry_is_refused",
        "test_default_presigned_url_after_expiry_is_refused",
        "test_put_dropped_halfway_leaves_the_previous_version",
    ),
}
for _module, _names in _SUITE.items():
    for _name in _names:
        globals()[_name] = getattr(_module, _name)
tree = test_listing.tree  # the listing tests' fixture, on this module's server


@dataclass(frozen=True)
class RouterS3:
    """The suite's ``S3Server`` interface, on the router."""

    https_url: str
    http_url: str
    cert: Path
    home: Path
    data: Path
    access_key: str
    secret_key: str

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def client(
        self, *, secret: str | None = None, https: bool = True, signature_version: str | None = None
    ) -> S3Client:
        session = boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key,
            region_name="us-east-1",
        )
        return session.client(
            "s3",
            endpoint_url=self.https_url if https else self.http_url,
            verify=str(self.cert),
            config=Config(s3={"addressing_style": "path"}, signature_version=signature_version),
        )


@pytest.fixture(scope="module")
def s3_server(router: Router, dave_credential: dict[str, Any]) -> Iterator[RouterS3]:
    tmp = router.area / "nginx-tls"
    tmp.mkdir(exist_ok=True)
    cert, key = self_signed_certificate(tmp)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(tmp=tmp, port=port, cert=cert, key=key, upstream=router.s3_url)
    )
    nginx = ManagedProcess(
        "nginx-tls", ["nginx", "-c", str(conf), "-e", str(tmp / "nginx-error.log")], tmp / "log"
    ).start()
    try:
        nginx.wait_for_port(port)
        yield RouterS3(
            https_url=f"https://127.0.0.1:{port}",
            http_url=router.s3_url,
            cert=cert,
            home=router.home("dave"),
            data=router.area / "data",
            access_key=dave_credential["access_key_id"],
            secret_key=dave_credential["secret_access_key"],
        )
    finally:
        nginx.stop()


@pytest.fixture(scope="module")
def s3(s3_server: RouterS3) -> Iterator[S3Client]:
    client = s3_server.client()
    yield client
    client.close()
