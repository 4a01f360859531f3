"""Requests signed by botocore itself, never by the code under test: SigV4 by header
(`S3SigV4Auth`) and by query (`S3SigV4QueryAuth`), SigV2 by header (`HmacV1Auth`) and by query
(`HmacV1QueryAuth`). Each takes a raw request, Host header included, and returns it signed."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from collections.abc import Iterator
from dataclasses import replace
from unittest import mock
from urllib.parse import urlsplit

from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.raw_http import Request
from tests.support.root_keys import REGION, ROOT_ACCESS, ROOT_SECRET


@contextlib.contextmanager
def clock(shift_seconds: float = 0) -> Iterator[None]:
    """botocore's SigV4 signs as if now were `shift_seconds` away (its clock is naive UTC)."""
    if not shift_seconds:
        yield
        return
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    then = now + datetime.timedelta(seconds=shift_seconds)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        yield


def _url(request: Request) -> str:
    return f"http://{request.header('Host')}{request.target}"


def _aws_request(request: Request) -> AWSRequest:
    """botocore's view of `request`: its URL and every one of its headers, in order."""
    aws = AWSRequest(method=request.method, url=_url(request))
    for name, value in request.headers:
        aws.headers[name] = value  # botocore's headers keep repeated names
    return aws


def _headers_of(aws: AWSRequest) -> tuple[tuple[str, str], ...]:
    return tuple((k, v if isinstance(v, str) else v.decode()) for k, v in aws.headers.items())


class _GivenPayloadHash(S3SigV4Auth):
    """botocore's S3 header signer with the x-amz-content-sha256 given: a streaming form,
    UNSIGNED-PAYLOAD, or the hash of another body than the one sent."""

    def __init__(self, credentials: Credentials, region: str, payload_hash: str) -> None:
        super().__init__(credentials, "s3", region)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def sigv4(
    request: Request,
    *,
    payload_hash: str | None = None,
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
    region: str = REGION,
    shift: float = 0,
) -> Request:
    """Header SigV4 over the path, the query and every header `request` has so far: it gains
    X-Amz-Content-SHA256 (the body's hash unless given), X-Amz-Date and Authorization.

    Headers added afterwards (a Content-Length, a forged extra) are sent unsigned."""
    aws = _aws_request(request)
    payload_hash = payload_hash or hashlib.sha256(request.body).hexdigest()
    with clock(shift):
        _GivenPayloadHash(Credentials(access, secret), region, payload_hash).add_auth(aws)
    return replace(request, headers=_headers_of(aws))


def presigned_v4(
    request: Request,
    *,
    expires: int = 3600,
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
    region: str = REGION,
    shift: float = 0,
) -> Request:
    """A presigned URL's query for `request`, signing its Host only: its other headers go
    along unsigned, as a browser or curl adds them."""
    aws = AWSRequest(method=request.method, url=_url(request))
    with clock(shift):
        credentials = Credentials(access, secret)
        S3SigV4QueryAuth(credentials, "s3", region, expires=expires).add_auth(aws)
    return replace(request, query=urlsplit(aws.url).query)


def sigv2(request: Request, *, access: str = ROOT_ACCESS, secret: str = ROOT_SECRET) -> Request:
    """SigV2 by header: `request` gains a Date and `Authorization: AWS AK:signature`."""
    aws = _aws_request(request)
    HmacV1Auth(Credentials(access, secret)).add_auth(aws)
    return replace(request, headers=_headers_of(aws))


def presigned_v2(
    request: Request,
    *,
    expires: int = 3600,
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
) -> Request:
    """A SigV2 presigned URL's query (AWSAccessKeyId, Signature, Expires, and the signed
    Content-Type and x-amz-* headers, which botocore repeats in the query)."""
    aws = _aws_request(request)
    HmacV1QueryAuth(Credentials(access, secret), expires=expires).add_auth(aws)
    return replace(request, query=urlsplit(aws.url).query)
