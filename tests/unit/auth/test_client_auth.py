"""addon.client_auth (ClientAuth) and addon.sigv4, against requests signed by botocore itself.

Every valid request here is signed by botocore's own `S3SigV4Auth` (or captured from a boto3
client) at a fixed time, then handed to the verifier as the proxy sees it: method, raw path,
raw query and mitmproxy headers. Refusals must carry the S3 code and status a client expects.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import hashlib
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from unittest import mock
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from mitmproxy.http import Headers

from addon.auth.checks import Key, KeyTable, Verified
from addon.auth.client_auth import ClientAuth
from addon.s3 import sigv4
from addon.s3.errors import S3Error, render

ACCESS = "AKIAROOTEXAMPLE7Q2Z"
SECRET = "root-secret-wJalrXUtnFEMI-K7MDENG-bPxRfiCY"
REGION = "us-east-1"
HOST = "gw.example.test:7070"
SIGNED_DT = datetime.datetime(2025, 3, 14, 15, 9, 26)  # naive UTC, as botocore's clock returns
SIGNED_AT = calendar.timegm(SIGNED_DT.timetuple())
AMZ_DATE = "20250314T150926Z"
CREDENTIAL_DATE = "20250314"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MINUTE = 60


@dataclasses.dataclass
class Wire:
    """A request as it reaches the proxy."""

    method: str
    path: str
    query: str
    fields: list[tuple[str, str]]

    def headers(self) -> Headers:
        return Headers([(k.encode(), v.encode()) for k, v in self.fields])

    def get(self, name: str) -> str:
        return next(v for k, v in self.fields if k.lower() == name.lower())

    def without(self, name: str) -> Wire:
        kept = [(k, v) for k, v in self.fields if k.lower() != name.lower()]
        assert len(kept) < len(self.fields), f"{name} was not there"
        return dataclasses.replace(self, fields=kept)

    def with_header(self, name: str, value: str) -> Wire:
        """`name` replaced by one `name: value`."""
        return self.without(name).adding(name, value)

    def adding(self, name: str, value: str) -> Wire:
        return dataclasses.replace(self, fields=[*self.fields, (name, value)])

    def with_auth(self, change: Callable[[str], str]) -> Wire:
        return self.with_header("Authorization", change(self.get("Authorization")))


def encode_path(bucket: str, key: str | None) -> str:
    """The path as botocore sends it: the key percent-encoded with `/` and `~` kept."""
    return f"/{bucket}" + ("" if key is None else "/" + quote(key, safe="/~"))


def encode_query(params: list[tuple[str, str | None]]) -> str:
    """The query as botocore sends it (None: a bare sub-resource key like `?uploads`)."""
    return "&".join(
        quote(k, safe="-_.~") + ("" if v is None else "=" + quote(v, safe="-_.~"))
        for k, v in params
    )


class DateHeaderSigner(S3SigV4Auth):
    """botocore's signer, but dating the request with `Date` (ISO basic) instead of X-Amz-Date."""

    def _set_necessary_date_headers(self, request: AWSRequest) -> None:
        request.headers["Date"] = request.context["timestamp"]


def sign(
    method: str = "GET",
    path: str = "/bucket/key.txt",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    access: str = ACCESS,
    secret: str = SECRET,
    region: str = REGION,
    unsigned_payload: bool = False,
    signer: type[S3SigV4Auth] = S3SigV4Auth,
    when: datetime.datetime = SIGNED_DT,
) -> Wire:
    """A request signed by botocore at `when`; path and query are sent exactly as given."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body)
    request.headers["Host"] = HOST
    for name, value in headers or []:
        request.headers[name] = value
    if unsigned_payload:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer(Credentials(access, secret), "s3", region).add_auth(request)
    fields = [(k, v if isinstance(v, str) else v.decode()) for k, v in request.headers.items()]
    return Wire(method, path, query, fields)


def auth(clock: float = SIGNED_AT, region: str = REGION) -> ClientAuth:
    return ClientAuth(KeyTable([Key(ACCESS, SECRET)]), region, clock=lambda: clock)


def verify(wire: Wire, clock: float = SIGNED_AT) -> Verified:
    return auth(clock).verify(wire.method, wire.path, wire.query, wire.headers())


def refusal(wire: Wire, clock: float = SIGNED_AT) -> S3Error:
    with pytest.raises(S3Error) as info:
        verify(wire, clock)
    return info.value


def signed_header_names(authorization: str) -> list[str]:
    match = re.search(r"SignedHeaders=([^,\s]+)", authorization)
    assert match, authorization
    return match[1].split(";")


# --- accepted -----------------------------------------------------------------------------------


def test_get_with_query_params_verifies() -> None:
    query = encode_query(
        [("list-type", "2"), ("prefix", "photos/2024 é+"), ("delimiter", "/"), ("max-keys", "5")]
    )
    wire = sign("GET", "/bucket", query)
    assert verify(wire) == Verified(
        signed_headers=("host", "x-amz-content-sha256", "x-amz-date"),
        payload_hash=EMPTY_SHA256,
        access=ACCESS,
    )


def test_bare_subresource_key_verifies() -> None:
    """`?uploads` has no `=`; its canonical form is `uploads=`."""
    wire = sign("POST", "/bucket/key", "uploads")
    assert verify(wire).payload_hash == EMPTY_SHA256


def test_put_with_hex_payload_hash_verifies() -> None:
    body = b"hello, world\n" * 100
    wire = sign(
        "PUT",
        "/bucket/key.txt",
        "x-id=PutObject",
        [("Content-Type", "text/plain"), ("x-amz-meta-color", "blue"), ("Content-Length", "1300")],
        body,
    )
    verified = verify(wire)
    assert verified.payload_hash == hashlib.sha256(body).hexdigest()
    assert set(verified.signed_headers) == {
        "content-length",
        "content-type",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-meta-color",
    }


def test_unsigned_payload_verifies() -> None:
    wire = sign("PUT", "/bucket/key.txt", body=b"data", unsigned_payload=True)
    assert wire.get("X-Amz-Content-SHA256") == sigv4.UNSIGNED_PAYLOAD
    assert verify(wire).payload_hash == sigv4.UNSIGNED_PAYLOAD


def test_header_value_whitespace_is_folded_as_botocore_does() -> None:
    wire = sign("PUT", "/bucket/k", headers=[("x-amz-meta-note", "  two   spaces  here ")])
    assert verify(wire).payload_hash == EMPTY_SHA256


@pytest.mark.parametrize(
    "key",
    [
        "my file.txt",
        "a+b=c.txt",
        "100%.txt",
        "été/日本語/ファイル.txt",
        "odd()!*'.txt",
        "semi;colon,comma:at@dollar$amp&.txt",
        "tilde~and-dash_dot.txt",
        "dir/sub/",
    ],
)
def test_keys_with_special_characters_verify(key: str) -> None:
    wire = sign("PUT", encode_path("bucket", key), body=b"x")
    verify(wire)


def test_s3cmd_raw_parentheses_in_path_verify() -> None:
    """s3cmd leaves `(` `)` unencoded on the wire; the signature is over the canonical %28 %29."""
    canonical = encode_path("bucket", "report (final).txt")
    assert "%28" in canonical and "%29" in canonical
    wire = sign("GET", canonical)
    raw = canonical.replace("%28", "(").replace("%29", ")")
    verify(dataclasses.replace(wire, path=raw))


def test_s3cmd_authorization_without_spaces_after_commas_verifies() -> None:
    wire = sign("PUT", "/bucket/key", body=b"x").with_auth(lambda a: a.replace(", ", ","))
    assert ", " not in wire.get("Authorization")
    verify(wire)


def test_date_header_in_iso_basic_format_instead_of_x_amz_date_verifies() -> None:
    wire = sign("GET", "/bucket/key", signer=DateHeaderSigner)
    assert not any(k.lower() == "x-amz-date" for k, _ in wire.fields)
    assert wire.get("Date") == AMZ_DATE
    assert "date" in verify(wire).signed_headers


def test_unsigned_non_amz_headers_are_allowed() -> None:
    wire = sign("GET", "/bucket/key").adding("User-Agent", "aws-cli/1.46").adding("Expect", "x")
    verify(wire)


@pytest.mark.parametrize("minutes", [-14, 14, -15, 15])
def test_clock_skew_within_15_minutes_is_accepted(minutes: int) -> None:
    verify(sign(), clock=SIGNED_AT + minutes * MINUTE)


class _Captured(Exception):
    pass


def _boto3_wire(call: Callable) -> Wire:
    """The request a real boto3 client would send, captured before it leaves."""
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}",
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    seen = []

    def capture(request, **_):
        seen.append(request)
        raise _Captured

    client.meta.events.register("before-send.s3", capture)
    with (
        mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED_DT),
        pytest.raises(_Captured),
    ):
        call(client)
    (request,) = seen
    url = urlsplit(request.url)
    fields = [("Host", url.netloc)]
    fields += [(k, v if isinstance(v, str) else v.decode()) for k, v in request.headers.items()]
    return Wire(request.method, url.path, url.query, fields)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda c: c.put_object(
                Bucket="bucket",
                Key="dir/my file (1) é+.txt",
                Body=b"payload",
                ContentType="text/plain",
                Metadata={"color": "blue"},
            ),
            id="PutObject",
        ),
        pytest.param(
            lambda c: c.get_object(
                Bucket="bucket",
                Key="a b/c~d.txt",
                ResponseContentType="text/plain",
                Range="bytes=0-1",
            ),
            id="GetObject",
        ),
        pytest.param(
            lambda c: c.list_objects_v2(Bucket="bucket", Prefix="photos/2024 é", Delimiter="/"),
            id="ListObjectsV2",
        ),
        pytest.param(
            lambda c: c.upload_part(
                Bucket="bucket", Key="big", UploadId="id/with+chars=", PartNumber=2, Body=b"p"
            ),
            id="UploadPart",
        ),
        pytest.param(
            lambda c: c.copy_object(Bucket="bucket", Key="dst", CopySource="src-bucket/src key"),
            id="CopyObject",
        ),
    ],
)
def test_requests_captured_from_boto3_verify(call: Callable) -> None:
    verify(_boto3_wire(call))


# --- refused: algorithm and date ----------------------------------------------------------------


def test_no_authorization_is_access_denied() -> None:
    error = refusal(sign().without("Authorization"))
    assert (error.code, error.status) == ("AccessDenied", 403)


def test_a_forged_sigv2_signature_does_not_match() -> None:
    """SigV2 is verified (addon/auth/sigv2.py), so a made-up one is a signature mismatch."""
    error = refusal(sign().with_header("Authorization", f"AWS {ACCESS}:c2lnbmF0dXJl"))
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_sigv4a_is_not_implemented() -> None:
    wire = sign().with_auth(lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"))
    error = refusal(wire)
    assert (error.code, error.status) == ("NotImplemented", 501)


@pytest.mark.parametrize("algorithm", ["AWS4-HMAC-SHA512", "Bearer", "aws4-hmac-sha256"])
def test_other_algorithm_is_invalid_argument(algorithm: str) -> None:
    error = refusal(sign().with_auth(lambda a: a.replace("AWS4-HMAC-SHA256", algorithm)))
    assert (error.code, error.status) == ("InvalidArgument", 400)


def test_missing_date_is_access_denied() -> None:
    error = refusal(sign().without("X-Amz-Date"))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.message == "AWS authentication requires a valid Date or x-amz-date header."


@pytest.mark.parametrize(
    "value", ["Fri, 14 Mar 2025 15:09:26 GMT", "2025-03-14T15:09:26Z", "20250314", "", "garbage"]
)
def test_unparsable_date_is_access_denied(value: str) -> None:
    error = refusal(sign().with_header("X-Amz-Date", value))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert "valid Date or x-amz-date" in error.message


@pytest.mark.parametrize("minutes", [-16, 16])
def test_clock_skew_over_15_minutes_is_request_time_too_skewed(minutes: int) -> None:
    now = SIGNED_AT + minutes * MINUTE
    error = refusal(sign(), clock=now)
    assert (error.code, error.status) == ("RequestTimeTooSkewed", 403)
    assert error.extra == {
        "RequestTime": AMZ_DATE,
        "ServerTime": datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "MaxAllowedSkewMilliseconds": "900000",
    }


# --- refused: the Authorization header ----------------------------------------------------------

SCOPE = f"{CREDENTIAL_DATE}/{REGION}/s3/aws4_request"


@pytest.mark.parametrize(
    ("credential", "detail"),
    [
        pytest.param(f"{ACCESS}/{CREDENTIAL_DATE}/{REGION}/s3", "mal-formed", id="four-parts"),
        pytest.param(f"{ACCESS}/{SCOPE}/extra", "mal-formed", id="six-parts"),
        pytest.param(f"/{SCOPE}", "Access Key", id="empty-access-key"),
        pytest.param(
            f"{ACCESS}/{CREDENTIAL_DATE}/{REGION}/ec2/aws4_request", "service", id="service"
        ),
        pytest.param(
            f"{ACCESS}/{CREDENTIAL_DATE}/{REGION}/s3/aws4_reqest", "terminal", id="terminal"
        ),
        pytest.param(f"{ACCESS}/20250313/{REGION}/s3/aws4_request", "date", id="credential-date"),
    ],
)
def test_malformed_credential_is_authorization_header_malformed(
    credential: str, detail: str
) -> None:
    wire = sign().with_auth(lambda a: re.sub(r"Credential=[^,]+", f"Credential={credential}", a))
    error = refusal(wire)
    assert (error.code, error.status) == ("AuthorizationHeaderMalformed", 400)
    assert detail in error.message


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: re.sub(r",\s*Signature=\w+", "", a), id="no-signature"),
        pytest.param(lambda a: re.sub(r",\s*SignedHeaders=[^,]+", "", a), id="no-signed-headers"),
        pytest.param(lambda a: a + ", Foo=bar", id="unknown-element"),
        pytest.param(lambda a: "AWS4-HMAC-SHA256", id="nothing-after-algorithm"),
    ],
)
def test_malformed_authorization_is_authorization_header_malformed(change: Callable) -> None:
    error = refusal(sign().with_auth(change))
    assert (error.code, error.status) == ("AuthorizationHeaderMalformed", 400)


def test_wrong_region_is_malformed_with_the_expected_region() -> None:
    error = refusal(sign(region="eu-west-1"))
    assert (error.code, error.status) == ("AuthorizationHeaderMalformed", 400)
    assert error.extra["Region"] == REGION
    assert "eu-west-1" in error.message


def test_unknown_access_key_is_invalid_access_key_id() -> None:
    error = refusal(sign(access="AKIAUNKNOWN000000000"))
    assert (error.code, error.status) == ("InvalidAccessKeyId", 403)
    assert error.extra.get("AWSAccessKeyId") == "AKIAUNKNOWN000000000"


def test_wrong_secret_is_signature_does_not_match() -> None:
    error = refusal(sign(secret=SECRET + "x"))
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_signed_amz_header_changed_after_signing_is_signature_does_not_match() -> None:
    wire = sign("PUT", headers=[("x-amz-meta-color", "blue")]).with_header(
        "x-amz-meta-color", "red"
    )
    error = refusal(wire)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_signed_content_type_changed_after_signing_is_signature_does_not_match() -> None:
    wire = sign("PUT", headers=[("Content-Type", "text/plain")])
    error = refusal(wire.with_header("Content-Type", "text/html"))
    assert error.code == "SignatureDoesNotMatch"


def test_second_value_of_a_signed_header_is_signature_does_not_match() -> None:
    wire = sign("PUT", headers=[("x-amz-meta-color", "blue")]).adding("x-amz-meta-color", "red")
    assert refusal(wire).code == "SignatureDoesNotMatch"


def test_host_changed_is_signature_does_not_match() -> None:
    error = refusal(sign().with_header("Host", "other.example.test:7070"))
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_method_changed_is_signature_does_not_match() -> None:
    wire = sign("GET")
    assert refusal(dataclasses.replace(wire, method="DELETE")).code == "SignatureDoesNotMatch"


def test_path_changed_is_signature_does_not_match() -> None:
    wire = sign("GET", "/bucket/a.txt")
    assert refusal(dataclasses.replace(wire, path="/bucket/b.txt")).code == "SignatureDoesNotMatch"


def test_query_param_added_is_signature_does_not_match() -> None:
    wire = sign("GET", "/bucket", "list-type=2")
    error = refusal(dataclasses.replace(wire, query="list-type=2&prefix=secret"))
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_query_value_changed_is_signature_does_not_match() -> None:
    wire = sign("GET", "/bucket", "list-type=2&prefix=a")
    assert refusal(dataclasses.replace(wire, query="list-type=2&prefix=b")).code == (
        "SignatureDoesNotMatch"
    )


def test_payload_hash_changed_after_signing_is_signature_does_not_match() -> None:
    wire = sign("PUT", body=b"one").with_header(
        "X-Amz-Content-SHA256", hashlib.sha256(b"two").hexdigest()
    )
    assert refusal(wire).code == "SignatureDoesNotMatch"


def test_truncated_signature_is_signature_does_not_match() -> None:
    wire = sign().with_auth(lambda a: a[:-1])
    assert refusal(wire).code == "SignatureDoesNotMatch"


def test_unsigned_amz_header_is_access_denied_with_headers_not_signed() -> None:
    wire = sign("PUT").adding("x-amz-meta-added", "1").adding("X-Amz-Acl", "public-read")
    error = refusal(wire)
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.extra == {"HeadersNotSigned": "x-amz-acl, x-amz-meta-added"}


def test_missing_content_sha256_is_invalid_request() -> None:
    error = refusal(sign().without("X-Amz-Content-SHA256"))
    assert (error.code, error.status) == ("InvalidRequest", 400)
    assert "x-amz-content-sha256" in error.message


@pytest.mark.parametrize(
    "value",
    ["garbage", "abc123", EMPTY_SHA256[:-1], EMPTY_SHA256 + "0", "g" * 64, "UNSIGNED_PAYLOAD"],
)
def test_garbage_content_sha256_is_invalid_argument(value: str) -> None:
    error = refusal(sign().with_header("X-Amz-Content-SHA256", value))
    assert (error.code, error.status) == ("InvalidArgument", 400)
    assert error.extra["ArgumentValue"] == value


@pytest.mark.parametrize(
    ("raw_authorization", "extra"),
    [
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={ACCESS}/{SCOPE}, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=caf\u00e9".encode(),
            [],
            id="non-ascii-signature",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential=\xff/{SCOPE}, SignedHeaders=host;x-amz-content-sha256;"
            "x-amz-date, Signature=00".encode("latin-1"),
            [],
            id="latin1-byte-in-access-key",
        ),
        pytest.param(
            f"AWS4-HMAC-SHA256 Credential={ACCESS}/{SCOPE}, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a, "
            "Signature=00".encode(),
            [(b"x-amz-meta-a", b"caf\xe9")],
            id="latin1-byte-in-signed-header",
        ),
    ],
)
def test_non_utf8_or_non_ascii_authorization_is_an_s3_error(
    raw_authorization: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    fields = [
        (b"Host", HOST.encode()),
        (b"X-Amz-Date", AMZ_DATE.encode()),
        (b"X-Amz-Content-SHA256", EMPTY_SHA256.encode()),
        (b"Authorization", raw_authorization),
        *extra,
    ]
    with pytest.raises(S3Error):
        auth().verify("GET", "/bucket/key", "", Headers(fields))


# --- the root secret never leaks ----------------------------------------------------------------

REFUSALS = {
    "no-authorization": lambda: (sign().without("Authorization"), SIGNED_AT),
    "sigv2": lambda: (sign().with_header("Authorization", f"AWS {ACCESS}:sig"), SIGNED_AT),
    "skew": lambda: (sign(), SIGNED_AT + 20 * MINUTE),
    "region": lambda: (sign(region="eu-west-1"), SIGNED_AT),
    "malformed": lambda: (sign().with_auth(lambda a: a.replace("/s3/", "/ec2/")), SIGNED_AT),
    "access-key": lambda: (sign(access="AKIAUNKNOWN000000000"), SIGNED_AT),
    "wrong-secret": lambda: (sign(secret=SECRET[::-1]), SIGNED_AT),
    "tampered": lambda: (sign().with_header("Host", "evil.example"), SIGNED_AT),
    "unsigned": lambda: (sign().adding("x-amz-meta-x", "1"), SIGNED_AT),
    "sha256": lambda: (sign().with_header("X-Amz-Content-SHA256", "nope"), SIGNED_AT),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_never_contain_the_root_secret(case: str) -> None:
    wire, clock = REFUSALS[case]()
    error = refusal(wire, clock)
    rendered = render(error, wire.path, "REQ1").decode()
    for text in (str(error), repr(error), error.message, repr(error.extra), rendered):
        assert SECRET not in text
    assert SECRET not in repr(auth().keys) + repr(auth().keys.find(ACCESS))


# --- sigv4.sign: re-signing for a backend -----------------------------------------------

BACKEND_ACCESS = "AKIABACKEND00000001"
BACKEND_SECRET = "backend-secret-Xy7/+Zq9-example"
BACKEND_REGION = "eu-central-1"
BACKEND_HOST = "bucket.s3.backend.test:9000"


def backend_signed(
    method: str = "PUT",
    path: str = "/big%20file%28x%29.bin",
    query: str = "partNumber=2&uploadId=abc%2Bdef",
    headers: list[tuple[str, str]] | None = None,
    signed_headers: list[str] | None = None,
    payload_hash: str = EMPTY_SHA256,
) -> tuple[dict[str, str], Wire]:
    headers = (
        headers
        if headers is not None
        else [
            ("Content-Type", "application/octet-stream"),
            ("x-amz-meta-color", "blue"),
            ("Content-Length", "0"),
        ]
    )
    signed_headers = (
        signed_headers if signed_headers is not None else ["content-type", "x-amz-meta-color"]
    )
    parts = sigv4.RequestParts(
        method, BACKEND_HOST, path, query, headers, signed_headers, payload_hash
    )
    result = sigv4.sign(BACKEND_ACCESS, BACKEND_SECRET, BACKEND_REGION, parts, AMZ_DATE).headers
    fields = [("Host", BACKEND_HOST), *headers, *result.items()]
    return result, Wire(method, path, query, fields)


def backend_auth() -> ClientAuth:
    keys = KeyTable([Key(BACKEND_ACCESS, BACKEND_SECRET)])
    return ClientAuth(keys, BACKEND_REGION, clock=lambda: SIGNED_AT)


def test_sign_is_what_botocore_signs() -> None:
    """Our SigV4 is written out for speed; botocore's S3SigV4Auth is the reference."""
    result, _ = backend_signed()
    reference = AWSRequest(
        method="PUT",
        url=f"http://{BACKEND_HOST}/big%20file%28x%29.bin?partNumber=2&uploadId=abc%2Bdef",
        headers={
            "Content-Type": "application/octet-stream",
            "x-amz-meta-color": "blue",
            "X-Amz-Content-SHA256": EMPTY_SHA256,
        },
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED_DT):
        S3SigV4Auth(Credentials(BACKEND_ACCESS, BACKEND_SECRET), "s3", BACKEND_REGION).add_auth(
            reference
        )
    assert result["Authorization"] == reference.headers["Authorization"]


def test_sign_returns_date_payload_hash_and_authorization() -> None:
    result, _ = backend_signed()
    assert result["X-Amz-Date"] == AMZ_DATE
    assert result["X-Amz-Content-SHA256"] == EMPTY_SHA256
    assert result["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={BACKEND_ACCESS}/{CREDENTIAL_DATE}/{BACKEND_REGION}/s3/"
        "aws4_request, "
    )


def test_sign_signs_host_date_payload_hash_and_the_given_headers() -> None:
    result, _ = backend_signed()
    assert signed_header_names(result["Authorization"]) == [
        "content-type",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-meta-color",
    ]


def test_sign_leaves_unlisted_headers_unsigned() -> None:
    result, _ = backend_signed(signed_headers=[])
    assert signed_header_names(result["Authorization"]) == [
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
    ]


@pytest.mark.parametrize(
    "payload_hash",
    [EMPTY_SHA256, sigv4.UNSIGNED_PAYLOAD, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"],
)
def test_sign_round_trips_through_header_auth(payload_hash: str) -> None:
    result, wire = backend_signed(payload_hash=payload_hash)
    assert result["X-Amz-Content-SHA256"] == payload_hash
    verified = backend_auth().verify(wire.method, wire.path, wire.query, wire.headers())
    assert verified.payload_hash == payload_hash


def test_sign_round_trip_with_a_bare_subresource_and_utf8_key() -> None:
    _, wire = backend_signed(
        method="POST", path="/" + quote("日本/ファイル (1).txt", safe="/~"), query="uploads="
    )
    backend_auth().verify(wire.method, wire.path, wire.query, wire.headers())


def test_sign_signature_is_for_the_backend_keys_only() -> None:
    _, wire = backend_signed()
    keys = KeyTable([Key(BACKEND_ACCESS, SECRET)])
    root = ClientAuth(keys, BACKEND_REGION, clock=lambda: SIGNED_AT)
    with pytest.raises(S3Error) as info:
        root.verify(wire.method, wire.path, wire.query, wire.headers())
    assert info.value.code == "SignatureDoesNotMatch"


def test_sign_replaces_a_stale_client_date_and_payload_hash() -> None:
    """Headers passed in that the signer owns (X-Amz-Date, X-Amz-Content-SHA256) are replaced."""
    stale = [("X-Amz-Date", "20200101T000000Z"), ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")]
    result, _ = backend_signed(headers=stale, signed_headers=[], payload_hash=EMPTY_SHA256)
    assert result["X-Amz-Date"] == AMZ_DATE
    assert result["X-Amz-Content-SHA256"] == EMPTY_SHA256


def test_sign_with_a_date_header_still_returns_x_amz_date() -> None:
    result, _ = backend_signed(
        method="GET",
        query="",
        headers=[("Date", "Fri, 14 Mar 2025 15:09:26 GMT")],
        signed_headers=[],
    )
    assert result["X-Amz-Date"] == AMZ_DATE


def test_verified_request_error_renders_as_s3_xml() -> None:
    """A refusal from the verifier renders as a parseable S3 error body."""
    error = refusal(sign(region="eu-west-1"))
    root = ET.fromstring(render(error, "/bucket/key.txt", "REQ1"))
    assert root.findtext("Code") == "AuthorizationHeaderMalformed"
    assert root.findtext("Region") == REGION


def test_sigv2_with_bytes_that_are_not_text_is_a_mismatch_not_a_crash() -> None:
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(SIGNED_AT))
    headers = Headers(
        [
            (b"Host", HOST.encode()),
            (b"Date", date.encode()),
            (b"x-amz-meta-a", b"caf\xe9"),
            (b"Authorization", f"AWS {ACCESS}:c2lnbmF0dXJl".encode()),
        ]
    )
    with pytest.raises(S3Error) as raised:
        auth().verify("GET", "/bucket/key", "", headers)
    assert raised.value.code == "SignatureDoesNotMatch"
