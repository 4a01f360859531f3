"""End to end: forged and malformed requests, sent as raw HTTP, are refused as S3 refuses them.

The corpus runs twice: signed with the root keys, and with a gateway user's (a bucket-scoped
`user`, from a users file beside the config), whose secret verifies every signature form and
signs every chunk. Each case starts from a request signed correctly with those keys by botocore
(header SigV4 by `S3SigV4Auth`, presigned URLs by `S3SigV4QueryAuth`, SigV2 by
`HmacV1Auth`/`HmacV1QueryAuth`, through tests/support/signing.py), with aws-chunked bodies signed
by the tests' own reference (tests/support/aws_chunked_reference.py), never by the code under
test, and breaks exactly one thing. The answer must be the S3 XML error a client expects:
status, Code, Message where S3 fixes it, Resource, a RequestId equal to the `x-amz-request-id`
header, `Content-Type: application/xml`, and no body for HEAD. After each case every backend is
read directly (with its own keys) to see that nothing was written, deleted or created anywhere.
The unbroken requests are sent too, so that each refusal is known to come from the one thing
broken and not from a request that was never valid.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import re
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from botocore.auth import UNSIGNED_PAYLOAD

from tests.support import direct, signing
from tests.support.aws_chunked_reference import (
    SIGNED,
    SIGNED_TRAILER,
    UNSIGNED_TRAILER,
    ChunkSigner,
    encode,
)
from tests.support.direct import has_bucket, has_object
from tests.support.proxy import Proxy, write_config
from tests.support.raw_http import Answer, Connection, Request, send
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET
from tests.support.topologies import EACH_PRIMARY

pytestmark = pytest.mark.e2e

MINUTE = 60
OCTETS = ("Content-Type", "application/octet-stream")
SENTINEL = b"the sentinel object: no refused request may change or delete it\n"

# --- the requests ---------------------------------------------------------------------------


USER_ACCESS, USER_SECRET = "corpus-user", "corpus-user-secret-do-not-log"
SIGNER = "the access key of the corpus's keys"  # an element's value: whoever signs the case


@dataclass(frozen=True)
class Target:
    """What a case addresses (the sentinel for reads and deletes, a fresh key or a fresh bucket),
    and the keys its requests are signed with unless a case says otherwise."""

    host: str
    bucket: str
    key: str | None
    access: str = ROOT_ACCESS
    secret: str = field(default=ROOT_SECRET, repr=False)

    def keys(self, options: dict) -> dict:
        """Signing options: the target's keys, unless `options` name others."""
        return {"access": self.access, "secret": self.secret, **options}

    @property
    def path(self) -> str:
        return f"/{self.bucket}" + (f"/{self.key}" if self.key is not None else "")


def signed(
    t: Target,
    method: str,
    *,
    path: str | None = None,
    query: str = "",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    **signing_options,
) -> Request:
    """Header SigV4 with every given header signed (plus host, x-amz-date, x-amz-content-sha256);
    Content-Length is sent unsigned. `signing_options`: payload_hash, access, secret, region,
    shift, as `signing.sigv4` takes them.

    `query` must be encoded: it is what is signed and what is sent.
    """
    unsigned = Request(method, path or t.path, query, (("Host", t.host), *headers), body)
    return signing.sigv4(unsigned, **t.keys(signing_options)).with_length()


def presigned(
    t: Target, method: str, *, path: str | None = None, body: bytes = b"", **signing_options
) -> Request:
    """A presigned URL made by botocore (`signing_options`: expires, access, secret, region,
    shift), fetched with nothing but Host (and a body's headers)."""
    extra = [OCTETS] if method == "PUT" else []
    raw = Request(method, path or t.path, "", (("Host", t.host), *extra), body)
    return signing.presigned_v4(raw, **t.keys(signing_options)).with_length()


def sigv2(
    t: Target,
    method: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    **signing_options,
) -> Request:
    """SigV2 by header (`Authorization: AWS AK:signature`, with a Date), signed by botocore
    (`signing_options`: access, secret)."""
    raw = Request(method, t.path, "", (("Host", t.host), *headers), body)
    return signing.sigv2(raw, **t.keys(signing_options)).with_length()


def sigv2_presigned(t: Target, method: str, *, body: bytes = b"", **signing_options) -> Request:
    """A SigV2 presigned URL (AWSAccessKeyId, Signature, Expires), made by botocore
    (`signing_options`: expires, access, secret)."""
    headers = (OCTETS,) if method == "PUT" else ()
    raw = Request(method, t.path, "", (("Host", t.host), *headers), body)
    return signing.presigned_v2(raw, **t.keys(signing_options)).with_length()


def part(name: str, value: str) -> Callable[[str], str]:
    """Set one part (Credential, SignedHeaders, Signature) of the Authorization header."""
    return lambda auth: re.sub(rf"{name}=[^,]*", lambda _: f"{name}={value}", auth)


def without_part(name: str) -> Callable[[str], str]:
    def change(auth: str) -> str:
        algorithm, _, params = auth.partition(" ")
        kept = [p.strip() for p in params.split(",") if not p.strip().startswith(f"{name}=")]
        return f"{algorithm} {', '.join(kept)}"

    return change


def credential(index: int, value: str) -> Callable[[str], str]:
    """Set one field of the Credential (0 access key, 1 date, 2 region, 3 service, 4 terminal)."""

    def change(auth: str) -> str:
        fields = re.search(r"Credential=([^,]*)", auth)[1].split("/")
        fields[index] = value
        return part("Credential", "/".join(fields))(auth)

    return change


def drop(name: str) -> Callable[[list[tuple[str, str]]], list[tuple[str, str]]]:
    return lambda pairs: [(k, v) for k, v in pairs if k != name]


def put(name: str, value: str) -> Callable[[list[tuple[str, str]]], list[tuple[str, str]]]:
    """Set a query parameter (in place, or appended)."""

    def change(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if any(k == name for k, _ in pairs):
            return [(k, value if k == name else v) for k, v in pairs]
        return [*pairs, (name, value)]

    return change


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def chunked(
    t: Target,
    chunks: list[bytes],
    *,
    form: str = SIGNED,
    decoded_length: int | None = None,
    trailer_names: str | None = None,
    trailers: list[tuple[str, str]] | None = None,
    bad_signature_at: int | None = None,
    bad_trailer_signature: bool = False,
    final: bool = True,
    declare_length: bool = True,
) -> Request:
    """A PutObject with an aws-chunked body of `chunks` (then the final zero-size chunk).

    Signed forms: each chunk signed on the chain seeded by the header signature;
    `bad_signature_at` replaces one chunk's signature (the last index is the final chunk).
    Trailing forms: `trailers` default to the CRC32 of the data under `trailer_names`.
    """
    data = b"".join(chunks)
    headers = [OCTETS, ("Content-Encoding", "aws-chunked")]
    if declare_length:
        length = len(data) if decoded_length is None else decoded_length
        headers.append(("x-amz-decoded-content-length", str(length)))
    trailing = form != SIGNED
    if trailing or trailer_names is not None:
        names = "x-amz-checksum-crc32" if trailer_names is None else trailer_names
        headers.append(("x-amz-trailer", names))
    raw = signed(t, "PUT", headers=tuple(headers), payload_hash=form)
    if trailing and trailers is None:
        trailers = [("x-amz-checksum-crc32", crc32(data))]
    body = encode(
        chunks,
        signer=ChunkSigner.seeded_by(raw, t.secret) if form != UNSIGNED_TRAILER else None,
        trailers=trailers if trailing else None,
        final=final,
        wrong_signature_at=bad_signature_at,
        wrong_trailer_signature=bad_trailer_signature,
    )
    return replace(raw.set("Content-Length", str(len(body))), body=body)


# --- the corpus -----------------------------------------------------------------------------

READ, WRITE, CREATE, DELETE = "read", "write", "create", "delete"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # READ/DELETE: the sentinel; WRITE: a fresh key; CREATE: a fresh bucket
    build: Callable[[Target], Request]
    status: int
    code: str
    message: str | None = None  # exact, where S3 fixes it
    prefix: str | None = None  # the start of the message, where S3 varies it
    elements: dict[str, str | None] = field(default_factory=dict)  # None: present, any value


ACCESS_DENIED = "Access Denied"
NO_DATE = "AWS authentication requires a valid Date or x-amz-date header."
SKEWED = "The difference between the request time and the current time is too large."
MALFORMED = "The authorization header is malformed; "
UNKNOWN_KEY = "The AWS Access Key Id you provided does not exist in our records."
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
NOT_SIGNED = "There were headers present in the request which were not signed"
PRESIGN_PARAMS = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)
OVER_A_WEEK = (
    "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
    "must be less than 604800 seconds"
)
EXPIRED = "Request has expired."
SKEW = {"RequestTime": None, "ServerTime": None, "MaxAllowedSkewMilliseconds": "900000"}


def get(t: Target, **kw) -> Request:
    return signed(t, "GET", **kw)


def put_body(t: Target, body: bytes = b"forged body", **kw) -> Request:
    return signed(t, "PUT", headers=(OCTETS,), body=body, **kw)


def unsigned(t: Target, method: str, body: bytes = b"") -> Request:
    extra = [OCTETS] if method == "PUT" else []
    return Request(method, t.path, "", (("Host", t.host), *extra), body).with_length()


def presign_missing(name: str) -> Case:
    return Case(
        f"presign-missing-{name.lower()}",
        READ,
        lambda t: presigned(t, "GET").params(drop(name)),
        400,
        "AuthorizationQueryParametersError",
        PRESIGN_PARAMS,
    )


BIG = bytes(range(256)) * 40  # 10240 bytes: a full-size chunk (>= 8192)

CASES: list[Case] = [
    # No authentication at all.
    Case("none-get", READ, lambda t: unsigned(t, "GET"), 403, "AccessDenied", ACCESS_DENIED),
    Case("none-head", READ, lambda t: unsigned(t, "HEAD"), 403, "AccessDenied"),
    Case(
        "none-put",
        WRITE,
        lambda t: unsigned(t, "PUT", b"anonymous body"),
        403,
        "AccessDenied",
        ACCESS_DENIED,
    ),
    Case(
        "none-put-expect-continue",
        WRITE,
        lambda t: replace(
            unsigned(t, "PUT", b"x" * 100_000).add("Expect", "100-continue"),
            expect_continue=True,
        ),
        403,
        "AccessDenied",
        ACCESS_DENIED,
    ),
    Case(
        "none-list-objects",
        READ,
        lambda t: Request("GET", f"/{t.bucket}", "list-type=2", (("Host", t.host),)),
        403,
        "AccessDenied",
        ACCESS_DENIED,
    ),
    Case(
        "none-list-buckets",
        READ,
        lambda t: Request("GET", "/", "", (("Host", t.host),)),
        403,
        "AccessDenied",
        ACCESS_DENIED,
    ),
    Case("none-delete", DELETE, lambda t: unsigned(t, "DELETE"), 403, "AccessDenied"),
    Case("none-create-bucket", CREATE, lambda t: unsigned(t, "PUT"), 403, "AccessDenied"),
    # Other signature versions and algorithms.
    # SigV2 (verified like SigV4: boto3 and the aws CLI presign with it for custom endpoints).
    Case(
        "sigv2-header-wrong-secret",
        WRITE,
        lambda t: sigv2(t, "PUT", headers=(OCTETS,), body=b"v2", secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
        elements={"AWSAccessKeyId": SIGNER},
    ),
    Case(
        "sigv2-header-wrong-secret-create-bucket",
        CREATE,
        lambda t: sigv2(t, "PUT", secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "sigv2-header-meta-changed",
        WRITE,
        lambda t: sigv2(t, "PUT", headers=(OCTETS, ("x-amz-meta-owner", "alice")), body=b"v2").set(
            "x-amz-meta-owner", "mallory"
        ),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "sigv2-header-unknown-access-key",
        WRITE,
        lambda t: sigv2(t, "PUT", headers=(OCTETS,), body=b"v2", access="AKUNKNOWNEXAMPLE"),
        403,
        "InvalidAccessKeyId",
        UNKNOWN_KEY,
        elements={"AWSAccessKeyId": "AKUNKNOWNEXAMPLE"},
    ),
    Case(
        "sigv2-header-without-date",
        READ,
        lambda t: sigv2(t, "GET").without("Date"),
        403,
        "AccessDenied",
        NO_DATE,
    ),
    Case(
        "sigv2-header-date-20-minutes-old",
        READ,
        lambda t: sigv2(t, "GET").set(
            "Date", email.utils.formatdate(time.time() - 20 * MINUTE, usegmt=True)
        ),
        403,
        "RequestTimeTooSkewed",
        SKEWED,
        elements=SKEW,
    ),
    Case(
        "sigv2-presigned-wrong-signature",
        READ,
        lambda t: sigv2_presigned(t, "GET").params(put("Signature", "bm90IGl0")),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "sigv2-presigned-put-wrong-secret",
        WRITE,
        lambda t: sigv2_presigned(t, "PUT", body=b"v2", secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "sigv2-presigned-get-sent-as-delete",
        DELETE,
        lambda t: replace(sigv2_presigned(t, "GET"), method="DELETE"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "sigv2-presigned-expired",
        READ,
        lambda t: sigv2_presigned(t, "GET", expires=-60),
        403,
        "AccessDenied",
        EXPIRED,
        elements={"Expires": None, "ServerTime": None},
    ),
    Case(
        "sigv2-presigned-unknown-access-key",
        READ,
        lambda t: sigv2_presigned(t, "GET", access="AKUNKNOWNEXAMPLE"),
        403,
        "InvalidAccessKeyId",
        UNKNOWN_KEY,
    ),
    Case(
        "sigv2-presigned-without-signature",
        WRITE,
        lambda t: sigv2_presigned(t, "PUT", body=b"v2").params(drop("Signature")),
        403,
        "AccessDenied",
    ),
    Case(
        "sigv4a-header",
        READ,
        lambda t: get(t).auth(lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")),
        501,
        "NotImplemented",
    ),
    Case(
        "unknown-algorithm",
        READ,
        lambda t: get(t).auth(lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512")),
        400,
        "InvalidArgument",
    ),
    Case(
        "sigv4a-streaming-payload",
        WRITE,
        lambda t: put_body(t, payload_hash="STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
        501,
        "NotImplemented",
    ),
    # HEAD: the same refusals, without a body.
    Case(
        "head-wrong-secret",
        READ,
        lambda t: signed(t, "HEAD", secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
    ),
    Case(
        "head-skew-plus-16-minutes",
        READ,
        lambda t: signed(t, "HEAD", shift=16 * MINUTE),
        403,
        "RequestTimeTooSkewed",
    ),
    Case(
        "head-credential-wrong-service",
        READ,
        lambda t: signed(t, "HEAD").auth(credential(3, "iam")),
        400,
        "AuthorizationHeaderMalformed",
    ),
    Case(
        "head-sigv4a",
        READ,
        lambda t: signed(t, "HEAD").auth(
            lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")
        ),
        501,
        "NotImplemented",
    ),
    Case(
        "head-presign-expired",
        READ,
        lambda t: presigned(t, "HEAD", expires=60, shift=-2 * 3600),
        403,
        "AccessDenied",
    ),
    # The Authorization header's parts.
    *(
        Case(
            f"auth-missing-{name.lower()}",
            READ,
            lambda t, name=name: get(t).auth(without_part(name)),
            400,
            "AuthorizationHeaderMalformed",
            prefix=MALFORMED,
        )
        for name in ("Credential", "SignedHeaders", "Signature")
    ),
    *(
        Case(
            f"auth-duplicate-{name.lower()}",
            READ,
            lambda t, name=name: get(t).auth(
                lambda a: a + ", " + re.search(rf"{name}=[^,]*", a)[0]
            ),
            400,
            "AuthorizationHeaderMalformed",
            prefix=MALFORMED,
        )
        for name in ("Credential", "SignedHeaders", "Signature")
    ),
    Case(
        "auth-garbled-credential",
        READ,
        lambda t: get(t).auth(lambda a: a.replace("Credential=", "Credential:")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    Case(
        "auth-garbled-signedheaders",
        READ,
        lambda t: get(t).auth(lambda a: a.replace("SignedHeaders=", "SignedHeaders=host x-amz;")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    Case(
        "auth-empty-signature",
        WRITE,
        lambda t: put_body(t).auth(part("Signature", "")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    Case(
        "credential-four-parts",
        READ,
        lambda t: get(t).auth(lambda a: a.replace("/aws4_request", "")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    Case(
        "credential-empty-access-key",
        READ,
        lambda t: get(t).auth(credential(0, "")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    Case(
        "credential-wrong-region",
        WRITE,
        lambda t: put_body(t, region="eu-west-1"),
        400,
        "AuthorizationHeaderMalformed",
        MALFORMED + "the region 'eu-west-1' is wrong; expecting 'us-east-1'",
        elements={"Region": "us-east-1"},
    ),
    Case(
        "credential-wrong-service",
        READ,
        lambda t: get(t).auth(credential(3, "iam")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    Case(
        "credential-wrong-terminal",
        READ,
        lambda t: get(t).auth(credential(4, "aws5_request")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    Case(
        "credential-date-not-x-amz-date",
        WRITE,
        lambda t: put_body(t).auth(credential(1, "20200101")),
        400,
        "AuthorizationHeaderMalformed",
        prefix=MALFORMED,
    ),
    # The date and the clock.
    Case(
        "date-missing",
        WRITE,
        lambda t: put_body(t).without("X-Amz-Date"),
        403,
        "AccessDenied",
        NO_DATE,
    ),
    Case(
        "date-unparsable",
        READ,
        lambda t: get(t).set("X-Amz-Date", "Fri, 14 Mar 2025 15:09:26 GMT"),
        403,
        "AccessDenied",
        NO_DATE,
    ),
    Case(
        "skew-plus-16-minutes",
        WRITE,
        lambda t: put_body(t, shift=16 * MINUTE),
        403,
        "RequestTimeTooSkewed",
        SKEWED,
        elements=SKEW,
    ),
    Case(
        "skew-minus-16-minutes",
        READ,
        lambda t: get(t, shift=-16 * MINUTE),
        403,
        "RequestTimeTooSkewed",
        SKEWED,
        elements=SKEW,
    ),
    # Keys and signatures.
    Case(
        "unknown-access-key",
        WRITE,
        lambda t: put_body(t, access="AKUNKNOWNEXAMPLE"),
        403,
        "InvalidAccessKeyId",
        UNKNOWN_KEY,
        elements={"AWSAccessKeyId": "AKUNKNOWNEXAMPLE"},
    ),
    Case(
        "unknown-access-key-create-bucket",
        CREATE,
        lambda t: signed(t, "PUT", access="AKUNKNOWNEXAMPLE"),
        403,
        "InvalidAccessKeyId",
        UNKNOWN_KEY,
    ),
    Case(
        "wrong-secret",
        WRITE,
        lambda t: put_body(t, secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
        elements={"AWSAccessKeyId": SIGNER},
    ),
    Case(
        "wrong-secret-create-bucket",
        CREATE,
        lambda t: signed(t, "PUT", secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "wrong-secret-delete",
        DELETE,
        lambda t: signed(t, "DELETE", secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "signature-too-short",
        READ,
        lambda t: get(t).auth(lambda a: a[:-1]),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "signature-not-hex",
        WRITE,
        lambda t: put_body(t).auth(part("Signature", "z" * 64)),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    # Changed after signing.
    Case(
        "signed-meta-changed",
        WRITE,
        lambda t: signed(
            t, "PUT", headers=(OCTETS, ("x-amz-meta-owner", "alice")), body=b"meta"
        ).set("x-amz-meta-owner", "mallory"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "signed-meta-second-value",
        WRITE,
        lambda t: signed(
            t, "PUT", headers=(OCTETS, ("x-amz-meta-owner", "alice")), body=b"meta"
        ).add("x-amz-meta-owner", "mallory"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "signed-content-type-changed",
        WRITE,
        lambda t: put_body(t).set("Content-Type", "text/html"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "host-changed",
        READ,
        lambda t: get(t).set("Host", "127.0.0.1:1"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "path-changed",
        WRITE,
        lambda t: replace(put_body(t, path=f"/{t.bucket}/elsewhere"), path=t.path),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "bucket-changed-create",
        CREATE,
        lambda t: replace(signed(t, "PUT", path=f"{t.path}-signed"), path=t.path),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "query-param-added",
        READ,
        lambda t: get(t).params(put("response-content-type", "text%2Fhtml")),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "query-param-removed",
        READ,
        lambda t: get(t, query="response-content-type=text%2Fplain").params(
            drop("response-content-type")
        ),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "query-param-changed",
        READ,
        lambda t: get(t, query="response-content-type=text%2Fplain").params(
            put("response-content-type", "text%2Fhtml")
        ),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "method-changed-get-to-delete",
        DELETE,
        lambda t: replace(get(t), method="DELETE"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "method-changed-get-to-put",
        WRITE,
        lambda t: replace(get(t).set("Content-Length", "0"), method="PUT"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "amz-header-added-unsigned",
        WRITE,
        lambda t: put_body(t).add("x-amz-meta-sneaky", "1"),
        403,
        "AccessDenied",
        NOT_SIGNED,
        elements={"HeadersNotSigned": "x-amz-meta-sneaky"},
    ),
    Case(
        "host-not-signed",
        READ,
        lambda t: get(t).auth(lambda a: a.replace("SignedHeaders=host;", "SignedHeaders=")),
        403,
        "AccessDenied",
        NOT_SIGNED,
        elements={"HeadersNotSigned": "host"},
    ),
    # The payload hash.
    Case(
        "content-sha256-missing",
        WRITE,
        lambda t: put_body(t).without("X-Amz-Content-SHA256"),
        400,
        "InvalidRequest",
        "Missing required header for this request: x-amz-content-sha256",
    ),
    Case(
        "content-sha256-garbage",
        WRITE,
        lambda t: put_body(t, payload_hash="not-a-sha256"),
        400,
        "InvalidArgument",
    ),
    Case(
        "content-sha256-changed",
        WRITE,
        lambda t: put_body(t).set("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "body-not-the-signed-sha256",
        WRITE,
        lambda t: replace(put_body(t, b"the signed body"), body=b"the other body!"),
        400,
        "XAmzContentSHA256Mismatch",
        elements={
            "ClientComputedContentSHA256": hashlib.sha256(b"the signed body").hexdigest(),
            "S3ComputedContentSHA256": hashlib.sha256(b"the other body!").hexdigest(),
        },
    ),
    Case(
        "big-body-not-the-signed-sha256",
        WRITE,
        lambda t: replace(put_body(t, BIG * 20), body=BIG * 19 + bytes(len(BIG))),
        400,
        "XAmzContentSHA256Mismatch",
    ),
    Case(
        "empty-body-with-non-empty-sha256",
        WRITE,
        lambda t: replace(put_body(t, b"promised body").set("Content-Length", "0"), body=b""),
        400,
        "XAmzContentSHA256Mismatch",
    ),
    # Presigned URLs.
    *(
        presign_missing(name)
        for name in (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Signature",
            "X-Amz-Date",
            "X-Amz-SignedHeaders",
            "X-Amz-Expires",
        )
    ),
    Case(
        "presign-expires-not-a-number",
        READ,
        lambda t: presigned(t, "GET").params(put("X-Amz-Expires", "soon")),
        400,
        "AuthorizationQueryParametersError",
        "X-Amz-Expires should be a number",
    ),
    Case(
        "presign-expires-negative",
        READ,
        lambda t: presigned(t, "GET", expires=-1),
        400,
        "AuthorizationQueryParametersError",
        "X-Amz-Expires must be non-negative",
    ),
    Case(
        "presign-expires-over-a-week",
        WRITE,
        lambda t: presigned(t, "PUT", expires=604801, body=b"for 7 days and a second"),
        400,
        "AuthorizationQueryParametersError",
        OVER_A_WEEK,
    ),
    Case(
        "presign-expired",
        READ,
        lambda t: presigned(t, "GET", expires=60, shift=-2 * 3600),
        403,
        "AccessDenied",
        EXPIRED,
        elements={"X-Amz-Expires": "60", "Expires": None, "ServerTime": None},
    ),
    Case(
        "presign-expired-put",
        WRITE,
        lambda t: presigned(t, "PUT", expires=60, shift=-2 * 3600, body=b"too late"),
        403,
        "AccessDenied",
        EXPIRED,
    ),
    Case(
        "presign-unparsable-date",
        READ,
        lambda t: presigned(t, "GET").params(put("X-Amz-Date", "yesterday")),
        400,
        "AuthorizationQueryParametersError",
    ),
    Case(
        "presign-unknown-algorithm",
        READ,
        lambda t: presigned(t, "GET").params(put("X-Amz-Algorithm", "AWS4-HMAC-SHA512")),
        400,
        "AuthorizationQueryParametersError",
    ),
    Case(
        "presign-wrong-region",
        READ,
        lambda t: presigned(t, "GET", region="eu-west-1"),
        400,
        "AuthorizationQueryParametersError",
        "Error parsing the X-Amz-Credential parameter; the region 'eu-west-1' is wrong; "
        "expecting 'us-east-1'",
        elements={"Region": "us-east-1"},
    ),
    Case(
        "presign-wrong-signature",
        READ,
        lambda t: presigned(t, "GET").params(put("X-Amz-Signature", "0" * 64)),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "presign-wrong-secret-put",
        WRITE,
        lambda t: presigned(t, "PUT", secret="not-the-root-secret", body=b"presigned"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "presign-wrong-secret-create-bucket",
        CREATE,
        lambda t: presigned(t, "PUT", secret="not-the-root-secret"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "presign-unknown-access-key",
        READ,
        lambda t: presigned(t, "GET", access="AKUNKNOWNEXAMPLE"),
        403,
        "InvalidAccessKeyId",
        UNKNOWN_KEY,
        elements={"AWSAccessKeyId": "AKUNKNOWNEXAMPLE"},
    ),
    Case(
        "presign-not-valid-yet",
        READ,
        lambda t: presigned(t, "GET", shift=3600),
        403,
        "AccessDenied",
    ),
    Case(
        "presign-and-authorization-header",
        READ,
        lambda t: presigned(t, "GET").set(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKOTHER/20200101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=" + "0" * 64,
        ),
        400,
        "InvalidArgument",
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
        "query string parameter or the Authorization header should be specified",
        elements={"ArgumentName": "Authorization"},
    ),
    Case(
        "presign-key-path-changed",
        WRITE,
        lambda t: replace(
            presigned(t, "PUT", path=f"/{t.bucket}/signed-key", body=b"presigned"), path=t.path
        ),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "presign-get-sent-as-delete",
        DELETE,
        lambda t: replace(presigned(t, "GET"), method="DELETE"),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "presign-query-param-added",
        READ,
        lambda t: presigned(t, "GET").params(put("response-content-type", "text%2Fhtml")),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "presign-amz-header-added-unsigned",
        WRITE,
        lambda t: presigned(t, "PUT", body=b"presigned").add("x-amz-meta-sneaky", "1"),
        403,
        "AccessDenied",
        NOT_SIGNED,
        elements={"HeadersNotSigned": "x-amz-meta-sneaky"},
    ),
    # aws-chunked, signed chunks.
    Case(
        "chunk-signature-wrong",
        WRITE,
        lambda t: chunked(t, [BIG, b"tail"], bad_signature_at=1),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "final-chunk-signature-wrong",
        WRITE,
        lambda t: chunked(t, [BIG, b"tail"], bad_signature_at=2),
        403,
        "SignatureDoesNotMatch",
        MISMATCH,
    ),
    Case(
        "chunked-short-body",
        WRITE,
        lambda t: chunked(t, [BIG], decoded_length=len(BIG) + 1000),
        400,
        "IncompleteBody",
    ),
    Case(
        "chunked-body-ends-before-final-chunk",
        WRITE,
        lambda t: chunked(t, [BIG, b"tail"], final=False),
        400,
        "IncompleteBody",
    ),
    Case(
        "chunked-signed-trailer-body-ends-before-final-chunk",
        WRITE,
        lambda t: chunked(t, [BIG, b"tail"], form=SIGNED_TRAILER, final=False),
        400,
        "IncompleteBody",
    ),
    Case(
        "trailer-body-ends-before-final-chunk",
        WRITE,
        lambda t: chunked(t, [BIG, b"tail"], form=UNSIGNED_TRAILER, final=False),
        400,
        "IncompleteBody",
    ),
    Case(
        "chunked-small-chunk-then-another",
        WRITE,
        lambda t: chunked(t, [b"a" * 100, b"b" * 100]),
        400,
        "InvalidChunkSizeError",
        "Only the last chunk is allowed to have a size less than 8192 bytes",
    ),
    Case(
        "chunked-longer-than-declared",
        WRITE,
        lambda t: chunked(t, [BIG, b"tail"], decoded_length=len(BIG)),
        400,
        "InvalidRequest",
    ),
    Case(
        "chunked-without-decoded-length",
        WRITE,
        lambda t: chunked(t, [b"tail"], declare_length=False),
        411,
        "MissingContentLength",
    ),
    Case(
        "chunked-signed-with-x-amz-trailer",
        WRITE,
        lambda t: chunked(t, [b"tail"], trailer_names="x-amz-checksum-crc32"),
        400,
        "InvalidRequest",
    ),
    Case(
        "chunked-trailer-signature-wrong",
        WRITE,
        lambda t: chunked(t, [BIG], form=SIGNED_TRAILER, bad_trailer_signature=True),
        403,
        "SignatureDoesNotMatch",
    ),
    # aws-chunked, unsigned payload with a trailing checksum.
    Case(
        "trailer-crc32-wrong",
        WRITE,
        lambda t: chunked(
            t,
            [BIG, b"tail"],
            form=UNSIGNED_TRAILER,
            trailers=[("x-amz-checksum-crc32", crc32(b"something else"))],
        ),
        400,
        "BadDigest",
        "The CRC32 you specified did not match the calculated checksum.",
    ),
    Case(
        "trailer-not-named-in-x-amz-trailer",
        WRITE,
        lambda t: chunked(
            t,
            [b"tail"],
            form=UNSIGNED_TRAILER,
            trailers=[
                (
                    "x-amz-checksum-sha256",
                    base64.b64encode(hashlib.sha256(b"tail").digest()).decode(),
                )
            ],
        ),
        400,
        "MalformedTrailerError",
    ),
    Case(
        "trailer-value-unsupported",
        WRITE,
        lambda t: chunked(
            t,
            [b"tail"],
            form=UNSIGNED_TRAILER,
            trailer_names="x-amz-checksum-md5",
            trailers=[("x-amz-checksum-md5", "AAAA")],
        ),
        400,
        "InvalidRequest",
    ),
    Case(
        "trailer-missing-x-amz-trailer",
        WRITE,
        lambda t: chunked(t, [b"tail"], form=UNSIGNED_TRAILER, trailer_names=""),
        400,
        "InvalidRequest",
    ),
]

# --- running the corpus ---------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    host: str
    bucket: str  # on the primary only, holds the sentinel
    prefix: str  # of the buckets that CreateBucket cases must not create
    access: str  # the keys every case is signed with
    secret: str = field(repr=False)

    def target(self, case: Case) -> Target:
        if case.kind == CREATE:
            return self.at(f"{self.prefix}-{case.id}"[:63], None)
        return self.at(self.bucket, f"w-{case.id}" if case.kind == WRITE else "sentinel")

    def at(self, bucket: str, key: str | None) -> Target:
        return Target(self.host, bucket, key, self.access, self.secret)


@pytest.fixture(scope="module")
def proxy(backends, run_proxy, tmp_path_factory) -> Proxy:
    """This module's proxy: in front of the three backends, with a users file beside its config
    (named there by a relative path) that gives the corpus's user its buckets."""
    folder = tmp_path_factory.mktemp("corpus")
    config = write_config(folder / "three.json", backends, settings={"users": "users.json"})
    user = {"access": USER_ACCESS, "secret": USER_SECRET, "role": "user"}
    user["buckets"] = ["corpus-*", "cb-*"]
    (folder / "users.json").write_text(json.dumps({"users": [user]}))
    return run_proxy(config)


@pytest.fixture(scope="module", params=["root", "user"])
def corpus(request, proxy, backends) -> Corpus:
    tag = uuid.uuid4().hex[:8]
    bucket = f"corpus-{tag}"
    client = direct.client(backends[0])
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="sentinel", Body=SENTINEL, ContentType="text/plain")
    keys = (ROOT_ACCESS, ROOT_SECRET) if request.param == "root" else (USER_ACCESS, USER_SECRET)
    return Corpus(f"127.0.0.1:{proxy.port}", bucket, f"cb-{tag}", *keys)


def assert_untouched(backends: list, corpus: Corpus, case: Case) -> None:
    """Read every backend directly: nothing of `case` was stored, created or deleted."""
    t = corpus.target(case)
    for index, server in enumerate(backends):
        where = f"{case.id}: backend {index}"
        if case.kind == WRITE:
            assert not has_object(server, t.bucket, t.key), where
        if case.kind == CREATE:
            assert not has_bucket(server, t.bucket), where
        if index:
            assert not has_bucket(server, corpus.bucket), where
    sentinel = direct.client(backends[0]).get_object(Bucket=corpus.bucket, Key="sentinel")
    assert sentinel["Body"].read() == SENTINEL, case.id


def assert_s3_error(answer: Answer, raw: Request, case: Case, signer: str) -> None:
    assert answer.status == case.status, (answer.status, answer.body)
    assert not answer.first_line.startswith(b"HTTP/1.1 100"), "a refusal invited the body"
    assert answer.headers["Content-Type"] == "application/xml"
    request_id = answer.headers["x-amz-request-id"]
    assert re.fullmatch(r"[0-9A-F]{16}", request_id or ""), request_id
    if raw.method == "HEAD":
        assert answer.body == b"" and answer.trailing == b"", answer.trailing
        return
    error = answer.error()
    assert error["Code"] == case.code, error
    assert error["RequestId"] == request_id
    assert error["Resource"] == raw.path
    if case.message is not None:
        assert error["Message"] == case.message
    if case.prefix is not None:
        assert error["Message"].startswith(case.prefix), error["Message"]
    for name, value in case.elements.items():
        assert name in error, error
        if value is not None:
            assert error[name] == (signer if value == SIGNER else value), (name, error)
    assert ROOT_SECRET not in answer.body.decode() and USER_SECRET not in answer.body.decode()


def test_the_corpus_is_large_and_its_ids_are_unique():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.id) for case in CASES],
)
def test_forged_request_is_refused_and_changes_nothing(proxy, backends, corpus, case):
    raw = case.build(corpus.target(case))
    answer = send(proxy.port, raw)
    try:
        assert_s3_error(answer, raw, case, corpus.access)
    finally:
        assert_untouched(backends, corpus, case)


# The unbroken forms of the corpus's requests are served: each refusal above is the one change.


def unbroken(t: Target, body: bytes) -> dict[str, Request]:
    return {
        "header-signed-put": put_body(t, body),
        "unsigned-payload-put": signed(
            t, "PUT", headers=(OCTETS,), body=body, payload_hash=UNSIGNED_PAYLOAD
        ),
        "presigned-put": presigned(t, "PUT", body=body),
        "presigned-put-a-week": presigned(t, "PUT", expires=604800, body=body),
        "signed-chunks": chunked(t, [body[:8192], body[8192:]]),
        "signed-chunks-signed-trailer": chunked(t, [body[:8192], body[8192:]], form=SIGNED_TRAILER),
        "unsigned-chunks-crc32-trailer": chunked(
            t, [body[:8192], body[8192:]], form=UNSIGNED_TRAILER
        ),
        "skew-14-minutes": put_body(t, body, shift=14 * MINUTE),
        "sigv2-header-put": sigv2(t, "PUT", headers=(OCTETS,), body=body),
        "sigv2-presigned-put": sigv2_presigned(t, "PUT", body=body),
    }


@pytest.mark.topologies(*EACH_PRIMARY)  # a server that verifies what each form stores
@pytest.mark.parametrize("form", list(unbroken(Target("h", "b", "k"), BIG)))
def test_unbroken_upload_lands_on_the_primary_byte_for_byte(proxy, backends, corpus, form):
    key = f"ok-{form}"
    body = BIG + form.encode()
    raw = unbroken(corpus.at(corpus.bucket, key), body)[form]
    answer = send(proxy.port, raw)
    assert answer.status == 200, answer.body
    stored = direct.client(backends[0]).get_object(Bucket=corpus.bucket, Key=key)
    assert stored["Body"].read() == body
    assert not has_bucket(backends[1], corpus.bucket)


@pytest.mark.parametrize(
    "build",
    [
        lambda t: get(t),
        lambda t: get(t, query="response-content-type=text%2Fplain"),
        lambda t: get(t, shift=-14 * MINUTE),
        lambda t: presigned(t, "GET"),
        lambda t: presigned(t, "GET", expires=604800),
        lambda t: presigned(t, "GET", expires=60, shift=-50),
        lambda t: sigv2(t, "GET"),
        lambda t: sigv2_presigned(t, "GET"),
    ],
    ids=[
        "header",
        "header-query",
        "skew-minus-14",
        "presigned",
        "presigned-week",
        "presigned-50s-of-60",
        "sigv2-header",
        "sigv2-presigned",
    ],
)
def test_unbroken_read_is_served(proxy, corpus, build):
    answer = send(proxy.port, build(corpus.at(corpus.bucket, "sentinel")))
    assert answer.status == 200, answer.body
    assert answer.body == SENTINEL


def test_after_the_corpus_nothing_was_written_and_the_proxy_still_serves(proxy, backends, corpus):
    for case in CASES:
        assert_untouched(backends, corpus, case)
    t = corpus.at(corpus.bucket, "sentinel")
    assert send(proxy.port, get(t)).body == SENTINEL
    client = proxy.client(corpus.access, corpus.secret)
    client.put_object(Bucket=corpus.bucket, Key="after", Body=b"still serving")
    assert client.get_object(Bucket=corpus.bucket, Key="after")["Body"].read() == b"still serving"
    log = proxy.log()
    assert ROOT_SECRET not in log and USER_SECRET not in log
    assert all(server.secret not in log for server in backends)


def test_a_refusal_leaves_the_connection_serving(proxy, corpus):
    """A refused bodiless request is answered on a connection that serves the next request."""
    t = corpus.at(corpus.bucket, "sentinel")
    with Connection(proxy.port) as connection:
        for raw, status in ((unsigned(t, "GET"), 403), (get(t), 200)):
            answer = connection.exchange(raw)
            assert answer.status == status, answer.body
    assert answer.body == SENTINEL
