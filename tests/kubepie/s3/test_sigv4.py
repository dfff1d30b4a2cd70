"""SigV4 verification: the AWS documentation's S3 examples and botocore's own signer."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kubepie.s3 import errors, sigv4
from kubepie.s3.chunked import AwsChunkedDecoder

# The example credentials of the AWS S3 SigV4 documentation.
DOC_KEY = "AKIAIOSFODNN7EXAMPLE"
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_NOW = datetime(2013, 5, 24, 0, 0, 5, tzinfo=UTC)
DOC_DATE = "20130524T000000Z"
DOC_SCOPE = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"


def _auth(signed: str, signature: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential={DOC_SCOPE},SignedHeaders={signed},Signature={signature}"


def _verify(request: sigv4.HttpRequest, secret: str = DOC_SECRET) -> sigv4.Verified:
    auth = sigv4.parse(request)
    assert auth is not None
    return sigv4.verify(request, auth, secret, DOC_NOW)


def test_signing_key_derivation_matches_the_documented_chain() -> None:
    key = sigv4.signing_key(DOC_SECRET, "20130524", "us-east-1", "s3")
    assert key.hex() == "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378"


def test_documented_get_object_with_range() -> None:
    request = sigv4.HttpRequest(
        "GET",
        "/test.txt",
        "",
        {
            "host": "examplebucket.s3.amazonaws.com",
            "range": "bytes=0-9",
            "x-amz-content-sha256": sigv4.EMPTY_SHA256,
            "x-amz-date": DOC_DATE,
            "authorization": _auth(
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        },
    )
    verified = _verify(request)
    assert verified.access_key == DOC_KEY
    assert verified.chunks is None
    with pytest.raises(errors.SignatureDoesNotMatch):
        _verify(request, secret=DOC_SECRET + "x")


def test_documented_put_object_with_encoded_path() -> None:
    body = b"Welcome to Amazon S3."
    request = sigv4.HttpRequest(
        "PUT",
        "/test%24file.text",
        "",
        {
            "host": "examplebucket.s3.amazonaws.com",
            "date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-date": DOC_DATE,
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
            "authorization": _auth(
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ),
        },
    )
    assert _verify(request).payload_hash == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("query", "signature"),
    [
        ("lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ("max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ],
)
def test_documented_bucket_requests(query: str, signature: str) -> None:
    request = sigv4.HttpRequest(
        "GET",
        "/",
        query,
        {
            "host": "examplebucket.s3.amazonaws.com",
            "x-amz-content-sha256": sigv4.EMPTY_SHA256,
            "x-amz-date": DOC_DATE,
            "authorization": _auth("host;x-amz-content-sha256;x-amz-date", signature),
        },
    )
    assert _verify(request).access_key == DOC_KEY


DOC_PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def test_documented_presigned_url_and_its_expiry() -> None:
    request = sigv4.HttpRequest(
        "GET", "/test.txt", DOC_PRESIGNED_QUERY, {"host": "examplebucket.s3.amazonaws.com"}
    )
    auth = sigv4.parse(request)
    assert auth is not None
    assert auth.presigned
    assert sigv4.verify(request, auth, DOC_SECRET, DOC_NOW).payload_hash == "UNSIGNED-PAYLOAD"
    later = DOC_NOW + timedelta(days=1, seconds=1)
    with pytest.raises(errors.AccessDenied, match="expired"):
        sigv4.verify(request, auth, DOC_SECRET, later)


def test_presigned_expiry_longer_than_seven_days_is_refused() -> None:
    query = DOC_PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=604801")
    request = sigv4.HttpRequest("GET", "/test.txt", query, {"host": "h"})
    with pytest.raises(errors.AuthorizationQueryParametersError):
        sigv4.parse(request)


DOC_CHUNKED_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": DOC_DATE,
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "content-length": "66824",
    "x-amz-content-sha256": sigv4.STREAMING_SIGNED,
    "authorization": _auth(
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    ),
}
DOC_CHUNK_SIGNATURES = (
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
)


def _doc_chunked_body(signatures: tuple[str, str, str], trailer: bytes = b"") -> bytes:
    return (
        f"10000;chunk-signature={signatures[0]}\r\n".encode()
        + b"a" * 65536
        + f"\r\n400;chunk-signature={signatures[1]}\r\n".encode()
        + b"a" * 1024
        + f"\r\n0;chunk-signature={signatures[2]}\r\n".encode()
        + trailer
        + b"\r\n"
    )


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_documented_chunked_upload_verifies_chunk_by_chunk(piece: int) -> None:
    request = sigv4.HttpRequest("PUT", "/examplebucket/chunkObject.txt", "", DOC_CHUNKED_HEADERS)
    verified = _verify(request)
    assert verified.chunks is not None
    decoder = AwsChunkedDecoder(verified.chunks)
    body = _doc_chunked_body(DOC_CHUNK_SIGNATURES)
    data = b"".join(
        bytes(part)
        for i in range(0, len(body), piece)
        for part in decoder.feed(body[i : i + piece])
    )
    assert decoder.finish() == {}
    assert data == b"a" * 66560
    assert len(body) == 66824


def test_a_tampered_chunk_is_refused() -> None:
    request = sigv4.HttpRequest("PUT", "/examplebucket/chunkObject.txt", "", DOC_CHUNKED_HEADERS)
    verified = _verify(request)
    body = bytearray(_doc_chunked_body(DOC_CHUNK_SIGNATURES))
    body[200] = ord("b")
    decoder = AwsChunkedDecoder(verified.chunks)
    with pytest.raises(errors.SignatureDoesNotMatch):
        decoder.feed(bytes(body))


def test_documented_signed_trailer_chain() -> None:
    seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    key = sigv4.signing_key(DOC_SECRET, "20130524", "us-east-1")
    chain = sigv4.ChunkSignatureChain(key, DOC_DATE, "20130524/us-east-1/s3/aws4_request", seed)
    signatures = (
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    )
    trailer = (
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
    )
    decoder = AwsChunkedDecoder(chain)
    decoded = decoder.feed(_doc_chunked_body(signatures, trailer))
    assert sum(len(p) for p in decoded) == 66560
    assert decoder.finish() == {"x-amz-checksum-crc32c": "sOO8/Q=="}

    forged = AwsChunkedDecoder(
        sigv4.ChunkSignatureChain(key, DOC_DATE, "20130524/us-east-1/s3/aws4_request", seed)
    )
    with pytest.raises(errors.SignatureDoesNotMatch):
        forged.feed(_doc_chunked_body(signatures, trailer.replace(b"sOO8", b"sOO9")))


def test_unsigned_chunked_body_with_trailer_and_short_body() -> None:
    decoder = AwsChunkedDecoder()
    parts = decoder.feed(b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n")
    assert b"".join(bytes(p) for p in parts) == b"hello"
    assert decoder.finish() == {"x-amz-checksum-crc32": "NhCmhg=="}
    cut = AwsChunkedDecoder()
    cut.feed(b"5\r\nhel")
    with pytest.raises(errors.IncompleteBody):
        cut.finish()


# botocore's signer, producing requests the verifier must accept.
SECRET = "s3cr3t/with+chars"
CREDS = Credentials("AKIDKUBEPIE", SECRET)


def _from_botocore(prepared: AWSRequest) -> sigv4.HttpRequest:
    url = urlsplit(str(prepared.url))
    headers = {k.lower(): str(v) for k, v in prepared.headers.items()}
    headers.setdefault("host", str(url.netloc))
    return sigv4.HttpRequest(str(prepared.method), str(url.path), str(url.query), headers)


def _botocore_signed(
    method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> sigv4.HttpRequest:
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    return _from_botocore(request)


def test_botocore_header_signature_with_awkward_key_and_query() -> None:
    url = "http://127.0.0.1:9000/home/dir%20one/caf%C3%A9%2Bplus~x.txt?list-type=2&prefix=a%2Fb&max-keys=3"
    request = _botocore_signed("GET", url, {"x-amz-meta-color": "blue  and   red"})
    auth = sigv4.parse(request)
    assert auth is not None
    verified = sigv4.verify(request, auth, SECRET, datetime.now(UTC))
    assert verified.access_key == "AKIDKUBEPIE"
    with pytest.raises(errors.SignatureDoesNotMatch):
        sigv4.verify(request, auth, "other-secret", datetime.now(UTC))


def test_botocore_signature_twenty_minutes_old_is_skewed() -> None:
    request = _botocore_signed("GET", "http://127.0.0.1:9000/home/x")
    auth = sigv4.parse(request)
    assert auth is not None
    with pytest.raises(errors.RequestTimeTooSkewed):
        sigv4.verify(request, auth, SECRET, datetime.now(UTC) + timedelta(minutes=20))
    with pytest.raises(errors.RequestTimeTooSkewed):
        sigv4.verify(request, auth, SECRET, datetime.now(UTC) - timedelta(minutes=20))


def test_botocore_presigned_put_and_tampered_path() -> None:
    request = AWSRequest(method="PUT", url="http://127.0.0.1:9000/home/up.bin")
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=60).add_auth(request)
    signed = _from_botocore(request)
    auth = sigv4.parse(signed)
    assert auth is not None
    assert auth.presigned
    assert sigv4.verify(signed, auth, SECRET, datetime.now(UTC)).payload_hash == "UNSIGNED-PAYLOAD"
    moved = sigv4.HttpRequest("PUT", "/home/other.bin", signed.raw_query, signed.headers)
    with pytest.raises(errors.SignatureDoesNotMatch):
        sigv4.verify(moved, auth, SECRET, datetime.now(UTC))
    with pytest.raises(errors.AccessDenied, match="expired"):
        sigv4.verify(signed, auth, SECRET, datetime.now(UTC) + timedelta(seconds=61))


def test_an_unsigned_amz_header_is_refused() -> None:
    request = _botocore_signed("PUT", "http://127.0.0.1:9000/home/x", body=b"x")
    headers = dict(request.headers)
    headers["x-amz-meta-injected"] = "1"
    tampered = sigv4.HttpRequest(request.method, request.raw_path, request.raw_query, headers)
    auth = sigv4.parse(tampered)
    assert auth is not None
    with pytest.raises(errors.AccessDenied, match="not signed"):
        sigv4.verify(tampered, auth, SECRET, datetime.now(UTC))


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("AWS4-HMAC-SHA1 Credential=a/b/c/s3/aws4_request", errors.AuthorizationHeaderMalformed),
        (
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request",
            errors.AuthorizationHeaderMalformed,
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/ec2/aws4_request,"
            "SignedHeaders=host,Signature=00",
            errors.AuthorizationHeaderMalformed,
        ),
    ],
)
def test_malformed_authorization_headers(header: str, error: type[errors.S3Error]) -> None:
    request = sigv4.HttpRequest(
        "GET", "/", "", {"authorization": header, "x-amz-content-sha256": sigv4.EMPTY_SHA256}
    )
    with pytest.raises(error):
        sigv4.parse(request)


def test_missing_content_sha256_and_anonymous_requests() -> None:
    headers = {"authorization": _auth("host", "00")}
    with pytest.raises(errors.MissingSecurityHeader):
        sigv4.parse(sigv4.HttpRequest("GET", "/", "", headers))
    assert sigv4.parse(sigv4.HttpRequest("GET", "/", "a=b", {"host": "h"})) is None


def test_botocore_sigv2_presigned_url() -> None:
    from botocore.auth import HmacV1QueryAuth

    from kubepie.s3 import sigv2

    request = AWSRequest(
        method="GET",
        url="http://127.0.0.1:9000/home/a%20b.txt?response-content-type=text%2Fplain",
    )
    HmacV1QueryAuth(CREDS, expires=60).add_auth(request)
    signed = _from_botocore(request)
    claims = sigv2.parse(signed)
    assert claims is not None
    assert sigv2.verify(signed, claims, SECRET, datetime.now(UTC)).access_key == "AKIDKUBEPIE"
    with pytest.raises(errors.SignatureDoesNotMatch):
        sigv2.verify(signed, claims, "wrong", datetime.now(UTC))
    other = sigv4.HttpRequest("GET", "/home/other.txt", signed.raw_query, signed.headers)
    with pytest.raises(errors.SignatureDoesNotMatch):
        sigv2.verify(other, claims, SECRET, datetime.now(UTC))
    with pytest.raises(errors.AccessDenied, match="expired"):
        sigv2.verify(signed, claims, SECRET, datetime.now(UTC) + timedelta(seconds=120))
