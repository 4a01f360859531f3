"""End to end: forged and malformed requests, sent as raw HTTP, are refused as S3 refuses them.

Each case starts from a request signed correctly with the root keys (header SigV4 by
`addon.sigv4.sign_headers`, presigned URLs by botocore's `S3SigV4QueryAuth`, SigV2 by botocore's
`HmacV1Auth`/`HmacV1QueryAuth`, aws-chunked bodies by `addon.aws_chunked.ChunkChain`) and breaks
exactly one thing. The answer must be the S3 XML
error a client expects: status, Code, Message where S3 fixes it, Resource, a RequestId equal to
the `x-amz-request-id` header, `Content-Type: application/xml`, and no body for HEAD. After each
case every backend is read directly (with its own keys) to see that nothing was written, deleted
or created anywhere. The unbroken requests are sent too, so that each refusal is known to come
from the one thing broken and not from a request that was never valid.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import hashlib
import http.client
import io
import re
import socket
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from addon import aws_chunked, sigv4
from tests.conftest import EACH_PRIMARY, ROOT_ACCESS, ROOT_SECRET

REGION = "us-east-1"
MINUTE = 60
OCTETS = ("Content-Type", "application/octet-stream")
SENTINEL = b"the sentinel object: no refused request may change or delete it\n"

# --- the requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """One HTTP/1.1 request exactly as it goes on the wire (header order and duplicates kept)."""

    method: str
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    expect_continue: bool = False  # send the headers only, and read the answer before any body

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def set(self, name: str, value: str) -> Raw:
        """Replace every value of `name` by one `value` (in the first one's place), or add it."""
        fields, done = [], False
        for k, v in self.headers:
            if k.lower() != name.lower():
                fields.append((k, v))
            elif not done:
                fields.append((k, value))
                done = True
        if not done:
            fields.append((name, value))
        return replace(self, headers=tuple(fields))

    def add(self, name: str, value: str) -> Raw:
        return replace(self, headers=(*self.headers, (name, value)))

    def without(self, name: str) -> Raw:
        return replace(
            self, headers=tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        )

    def auth(self, change: Callable[[str], str]) -> Raw:
        return self.set("Authorization", change(self.header("Authorization")))

    def params(self, change: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]) -> Raw:
        """Edit the query as raw (still encoded) key/value pairs."""
        pairs = [(k, v) for k, _, v in (p.partition("=") for p in self.query.split("&") if p)]
        return replace(self, query="&".join(f"{k}={v}" for k, v in change(pairs)))

    def wire(self) -> bytes:
        target = self.path + (f"?{self.query}" if self.query else "")
        lines = [f"{self.method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Target:
    """What a case addresses: the sentinel (reads, deletes), a fresh key or a fresh bucket."""

    host: str
    bucket: str
    key: str | None

    @property
    def path(self) -> str:
        return f"/{self.bucket}" + (f"/{self.key}" if self.key is not None else "")


@contextlib.contextmanager
def clock(shift_seconds: float = 0) -> Iterator[None]:
    """botocore (presigning) signs as if now were `shift_seconds` away (its clock is naive UTC)."""
    if not shift_seconds:
        yield
        return
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    then = now + datetime.timedelta(seconds=shift_seconds)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        yield


def content_length(method: str, body: bytes) -> list[tuple[str, str]]:
    return [("Content-Length", str(len(body)))] if body or method in ("PUT", "POST") else []


def signed(
    t: Target,
    method: str,
    *,
    path: str | None = None,
    query: str = "",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    payload_hash: str | None = None,
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
    region: str = REGION,
    shift: float = 0,
) -> Raw:
    """Header SigV4 with every given header signed (plus host, x-amz-date, x-amz-content-sha256).

    `query` must be canonical (sorted, encoded): it is what is signed and what is sent.
    """
    path = path or t.path
    payload_hash = payload_hash or hashlib.sha256(body).hexdigest()
    signature = sigv4.sign_headers(
        access=access,
        secret=secret,
        region=region,
        method=method,
        host=t.host,
        path=path,
        query=query,
        headers=headers,
        signed_headers=[name.lower() for name, _ in headers],
        payload_hash=payload_hash,
        timestamp=time.strftime(sigv4.TIMESTAMP_FORMAT, time.gmtime(time.time() + shift)),
    )
    fields = [("Host", t.host), *headers, *signature.items(), *content_length(method, body)]
    return Raw(method, path, query, tuple(fields), body)


def presigned(
    t: Target,
    method: str,
    *,
    path: str | None = None,
    expires: int = 3600,
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
    region: str = REGION,
    shift: float = 0,
    body: bytes = b"",
) -> Raw:
    """A presigned URL made by botocore, fetched with nothing but Host (and a body's headers)."""
    request = AWSRequest(method=method, url=f"http://{t.host}{path or t.path}")
    with clock(shift):
        S3SigV4QueryAuth(Credentials(access, secret), "s3", region, expires=expires).add_auth(
            request
        )
    url = urlsplit(request.url)
    extra = [OCTETS] if method == "PUT" else []
    fields = [("Host", t.host), *extra, *content_length(method, body)]
    return Raw(method, url.path, url.query, tuple(fields), body)


def sigv2(
    t: Target,
    method: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
) -> Raw:
    """SigV2 by header (`Authorization: AWS AK:signature`, with a Date), signed by botocore."""
    request = AWSRequest(method=method, url=f"http://{t.host}{t.path}", headers=dict(headers))
    HmacV1Auth(Credentials(access, secret)).add_auth(request)
    fields = [("Host", t.host), *request.headers.items(), *content_length(method, body)]
    return Raw(method, t.path, "", tuple(fields), body)


def sigv2_presigned(
    t: Target,
    method: str,
    *,
    expires: int = 3600,
    body: bytes = b"",
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
) -> Raw:
    """A SigV2 presigned URL (AWSAccessKeyId, Signature, Expires), made by botocore."""
    headers = (OCTETS,) if method == "PUT" else ()
    request = AWSRequest(method=method, url=f"http://{t.host}{t.path}", headers=dict(headers))
    HmacV1QueryAuth(Credentials(access, secret), expires=expires).add_auth(request)
    fields = [("Host", t.host), *headers, *content_length(method, body)]
    return Raw(method, t.path, urlsplit(request.url).query, tuple(fields), body)


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
    form: str = aws_chunked.SIGNED,
    decoded_length: int | None = None,
    trailer_names: str | None = None,
    trailers: list[tuple[str, str]] | None = None,
    bad_signature_at: int | None = None,
    bad_trailer_signature: bool = False,
    final: bool = True,
    declare_length: bool = True,
) -> Raw:
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
    trailing = form != aws_chunked.SIGNED
    if trailing or trailer_names is not None:
        names = "x-amz-checksum-crc32" if trailer_names is None else trailer_names
        headers.append(("x-amz-trailer", names))
    raw = signed(t, "PUT", headers=tuple(headers), payload_hash=form)
    signed_form = form != aws_chunked.UNSIGNED_TRAILER
    chain = None
    if signed_form:
        date = raw.header("X-Amz-Date")
        chain = aws_chunked.ChunkChain(
            key=sigv4.signing_key(ROOT_SECRET, date[:8], REGION),
            timestamp=date,
            scope=f"{date[:8]}/{REGION}/s3/aws4_request",
            previous=re.search(r"Signature=([0-9a-f]{64})", raw.header("Authorization"))[1],
        )
    body = bytearray()
    for index, piece in enumerate([*chunks, b""] if final else chunks):
        size = f"{len(piece):x}"
        if chain is not None:
            signature = chain.chunk(piece)
            if index == bad_signature_at:
                signature = hashlib.sha256(signature.encode()).hexdigest()  # 64 hex, wrong
            size += f";chunk-signature={signature}"
        if trailing and not piece:  # the final chunk of a trailing form: trailers follow it
            body += f"{size}\r\n".encode()
            lines = trailers if trailers is not None else [("x-amz-checksum-crc32", crc32(data))]
            canonical = b"".join(f"{n}:{v}\n".encode() for n, v in lines)
            body += b"".join(f"{n}:{v}\r\n".encode() for n, v in lines)
            if chain is not None:
                signature = chain.trailer(canonical)
                if bad_trailer_signature:
                    signature = hashlib.sha256(signature.encode()).hexdigest()
                body += f"x-amz-trailer-signature:{signature}\r\n".encode()
            body += b"\r\n"
        else:
            body += f"{size}\r\n".encode() + piece + b"\r\n"
    return replace(raw.set("Content-Length", str(len(body))), body=bytes(body))


# --- the answers ----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    first_line: bytes
    trailing: bytes = b""  # what came after the answer (nothing, for a HEAD)

    def error(self) -> dict[str, str]:
        root = ET.fromstring(self.body)
        assert root.tag == "Error", self.body
        return {child.tag: child.text or "" for child in root}


def send(port: int, raw: Raw) -> Answer:
    """Send `raw` on a new connection and read one answer.

    A refused upload is answered before its body is read, then the proxy half-closes: the
    body is sent whole first (a send that fails because of that close is tolerated), except
    with `Expect: 100-continue`, where the answer must come instead of a 100 Continue.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw.wire() if raw.expect_continue else raw.wire() + raw.body)
        if raw.method == "HEAD":
            return _head_answer(sock)
        first_line = sock.recv(64, socket.MSG_PEEK).partition(b"\r\n")[0]
        response = http.client.HTTPResponse(sock, method=raw.method)
        response.begin()
        return Answer(response.status, response.headers, response.read(), first_line)


def _head_answer(sock: socket.socket) -> Answer:
    """Read a HEAD answer byte by byte: any byte after its headers would be a body."""
    data = b""
    while b"\r\n\r\n" not in data and (more := sock.recv(65536)):
        data += more
    head, _, trailing = data.partition(b"\r\n\r\n")
    sock.settimeout(0.3)
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        trailing += sock.recv(4096)
    first_line, _, fields = head.partition(b"\r\n")
    headers = http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n"))
    return Answer(int(first_line.split()[1]), headers, b"", first_line, trailing)


# --- the corpus -----------------------------------------------------------------------------

READ, WRITE, CREATE, DELETE = "read", "write", "create", "delete"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # READ/DELETE: the sentinel; WRITE: a fresh key; CREATE: a fresh bucket
    build: Callable[[Target], Raw]
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


def get(t: Target, **kw) -> Raw:
    return signed(t, "GET", **kw)


def put_body(t: Target, body: bytes = b"forged body", **kw) -> Raw:
    return signed(t, "PUT", headers=(OCTETS,), body=body, **kw)


def unsigned(t: Target, method: str, body: bytes = b"") -> Raw:
    extra = [OCTETS] if method == "PUT" else []
    return Raw(method, t.path, "", (("Host", t.host), *extra, *content_length(method, body)), body)


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
        lambda t: Raw("GET", f"/{t.bucket}", "list-type=2", (("Host", t.host),)),
        403,
        "AccessDenied",
        ACCESS_DENIED,
    ),
    Case(
        "none-list-buckets",
        READ,
        lambda t: Raw("GET", "/", "", (("Host", t.host),)),
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
        elements={"AWSAccessKeyId": ROOT_ACCESS},
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
        elements={"AWSAccessKeyId": ROOT_ACCESS},
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
        lambda t: chunked(t, [BIG, b"tail"], form=aws_chunked.SIGNED_TRAILER, final=False),
        400,
        "IncompleteBody",
    ),
    Case(
        "trailer-body-ends-before-final-chunk",
        WRITE,
        lambda t: chunked(t, [BIG, b"tail"], form=aws_chunked.UNSIGNED_TRAILER, final=False),
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
        lambda t: chunked(t, [BIG], form=aws_chunked.SIGNED_TRAILER, bad_trailer_signature=True),
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
            form=aws_chunked.UNSIGNED_TRAILER,
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
            form=aws_chunked.UNSIGNED_TRAILER,
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
            form=aws_chunked.UNSIGNED_TRAILER,
            trailer_names="x-amz-checksum-md5",
            trailers=[("x-amz-checksum-md5", "AAAA")],
        ),
        400,
        "InvalidRequest",
    ),
    Case(
        "trailer-missing-x-amz-trailer",
        WRITE,
        lambda t: chunked(t, [b"tail"], form=aws_chunked.UNSIGNED_TRAILER, trailer_names=""),
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

    def target(self, case: Case) -> Target:
        if case.kind == CREATE:
            return Target(self.host, f"{self.prefix}-{case.id}"[:63], None)
        key = f"w-{case.id}" if case.kind == WRITE else "sentinel"
        return Target(self.host, self.bucket, key)


@pytest.fixture(scope="module")
def corpus(proxy, backends) -> Corpus:
    tag = uuid.uuid4().hex[:8]
    bucket = f"corpus-{tag}"
    client = backends[0].client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="sentinel", Body=SENTINEL, ContentType="text/plain")
    return Corpus(f"127.0.0.1:{proxy.port}", bucket, f"cb-{tag}")


def found(call: Callable[[], object]) -> bool:
    """A HEAD read directly on a backend: True if there, False on its 404."""
    try:
        call()
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e
        return False
    return True


@pytest.fixture(scope="module")
def direct(backends) -> list:
    """One client per backend, with that backend's own keys (made once: they are slow to make)."""
    return [server.client() for server in backends]


def assert_untouched(direct: list, corpus: Corpus, case: Case) -> None:
    """Read every backend directly: nothing of `case` was stored, created or deleted."""
    t = corpus.target(case)
    for index, client in enumerate(direct):
        where = f"{case.id}: backend {index}"
        if case.kind == WRITE:
            assert not found(lambda c=client: c.head_object(Bucket=t.bucket, Key=t.key)), where
        if case.kind == CREATE:
            assert not found(lambda c=client: c.head_bucket(Bucket=t.bucket)), where
        if index:
            assert not found(lambda c=client: c.head_bucket(Bucket=corpus.bucket)), where
    sentinel = direct[0].get_object(Bucket=corpus.bucket, Key="sentinel")
    assert sentinel["Body"].read() == SENTINEL, case.id


def assert_s3_error(answer: Answer, raw: Raw, case: Case) -> None:
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
            assert error[name] == value, (name, error)
    assert ROOT_SECRET not in answer.body.decode()


def test_the_corpus_is_large_and_its_ids_are_unique():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.id) for case in CASES],
)
def test_forged_request_is_refused_and_changes_nothing(proxy, direct, corpus, case):
    raw = case.build(corpus.target(case))
    answer = send(proxy.port, raw)
    try:
        assert_s3_error(answer, raw, case)
    finally:
        assert_untouched(direct, corpus, case)


# The unbroken forms of the corpus's requests are served: each refusal above is the one change.


def unbroken(t: Target, body: bytes) -> dict[str, Raw]:
    return {
        "header-signed-put": put_body(t, body),
        "unsigned-payload-put": signed(
            t, "PUT", headers=(OCTETS,), body=body, payload_hash=sigv4.UNSIGNED_PAYLOAD
        ),
        "presigned-put": presigned(t, "PUT", body=body),
        "presigned-put-a-week": presigned(t, "PUT", expires=604800, body=body),
        "signed-chunks": chunked(t, [body[:8192], body[8192:]]),
        "signed-chunks-signed-trailer": chunked(
            t, [body[:8192], body[8192:]], form=aws_chunked.SIGNED_TRAILER
        ),
        "unsigned-chunks-crc32-trailer": chunked(
            t, [body[:8192], body[8192:]], form=aws_chunked.UNSIGNED_TRAILER
        ),
        "skew-14-minutes": put_body(t, body, shift=14 * MINUTE),
        "sigv2-header-put": sigv2(t, "PUT", headers=(OCTETS,), body=body),
        "sigv2-presigned-put": sigv2_presigned(t, "PUT", body=body),
    }


@pytest.mark.topologies(*EACH_PRIMARY)  # a server that verifies what each form stores
@pytest.mark.parametrize("form", list(unbroken(Target("h", "b", "k"), BIG)))
def test_unbroken_upload_lands_on_the_primary_byte_for_byte(proxy, direct, corpus, form):
    key = f"ok-{form}"
    body = BIG + form.encode()
    raw = unbroken(Target(corpus.host, corpus.bucket, key), body)[form]
    answer = send(proxy.port, raw)
    assert answer.status == 200, answer.body
    assert direct[0].get_object(Bucket=corpus.bucket, Key=key)["Body"].read() == body
    assert not found(lambda: direct[1].head_bucket(Bucket=corpus.bucket))


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
    answer = send(proxy.port, build(Target(corpus.host, corpus.bucket, "sentinel")))
    assert answer.status == 200, answer.body
    assert answer.body == SENTINEL


def test_after_the_corpus_nothing_was_written_and_the_proxy_still_serves(
    proxy, backends, direct, corpus
):
    for case in CASES:
        assert_untouched(direct, corpus, case)
    t = Target(corpus.host, corpus.bucket, "sentinel")
    assert send(proxy.port, get(t)).body == SENTINEL
    client = proxy.client()
    client.put_object(Bucket=corpus.bucket, Key="after", Body=b"still serving")
    assert client.get_object(Bucket=corpus.bucket, Key="after")["Body"].read() == b"still serving"
    log = proxy.log()
    assert ROOT_SECRET not in log
    assert all(server.secret not in log for server in backends)


def test_a_refusal_leaves_the_connection_serving(proxy, corpus):
    """A refused bodiless request is answered on a connection that serves the next request."""
    t = Target(corpus.host, corpus.bucket, "sentinel")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as sock:
        for raw, status in ((unsigned(t, "GET"), 403), (get(t), 200)):
            sock.sendall(raw.wire())
            response = http.client.HTTPResponse(sock, method=raw.method)
            response.begin()
            body = response.read()
            assert response.status == status, body
    assert body == SENTINEL
