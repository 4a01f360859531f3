"""What a signature pins: no query key that selects an operation can be added after signing.

SigV4 signs the whole query, so any parameter added afterwards breaks the signature. SigV2 signs
only a fixed list of sub-resources (addon/auth/sigv2.py): a request whose operation hangs on one it
leaves out is refused, as AWS refuses it, instead of being forwarded under a borrowed signature.
Every request here is signed by botocore itself.
"""

from __future__ import annotations

import calendar
import datetime
import time
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from mitmproxy.http import Headers

from addon.auth import sigv2
from addon.auth.checks import Key, KeyTable
from addon.auth.client_auth import ClientAuth
from addon.s3.errors import S3Error
from addon.s3.operations import SUBRESOURCES, TABLE, Scope

ACCESS, SECRET = "AKIAROOTEXAMPLE7Q2Z", "root-secret-for-scope-tests"
HOST = "gw.example.test:7070"
SIGNED_DT = datetime.datetime(2025, 3, 14, 15, 9, 26)
SIGNED_AT = calendar.timegm(SIGNED_DT.timetuple())
PATHS = {Scope.BUCKET: "/bucket", Scope.OBJECT: "/bucket/key.txt"}

# Every (method, path, sub-resource) of the operation table that has a sub-resource.
ROWS = sorted(
    {(method, PATHS[scope], sub) for (method, scope, sub) in TABLE if sub and scope in PATHS}
)


def _query_value(sub: str) -> str:
    return {"uploadId": "upload-1", "list-type": "2", "versionId": "v1"}.get(sub, "")


def _add(query: str, key: str) -> str:
    extra = f"{key}={_query_value(key)}" if _query_value(key) else key
    return f"{query}&{extra}" if query else extra


def _v2(method: str, path: str, query: str, *, presigned: bool) -> tuple[str, str, Headers]:
    """A SigV2 request signed by botocore for `path?query`; returns path, query, headers."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers={"Host": HOST})
    if path.count("/") == 1:
        request.auth_path = path + "/"  # botocore signs a bucket as "/bucket/"
    credentials = Credentials(ACCESS, SECRET)
    with mock.patch("time.time", return_value=SIGNED_AT):
        if presigned:
            HmacV1QueryAuth(credentials, expires=3600).add_auth(request)
        else:
            request.headers["Date"] = time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(SIGNED_AT)
            )
            HmacV1Auth(credentials).add_auth(request)
    split = urlsplit(request.url)
    headers = Headers([(k.encode(), str(v).encode()) for k, v in request.headers.items()])
    return split.path, split.query, headers


def _v4(method: str, path: str, query: str, *, presigned: bool) -> tuple[str, str, Headers]:
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers={"Host": HOST})
    signer = S3SigV4QueryAuth if presigned else S3SigV4Auth
    args = {"expires": 3600} if presigned else {}
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED_DT):
        signer(Credentials(ACCESS, SECRET), "s3", "us-east-1", **args).add_auth(request)
    split = urlsplit(request.url)
    headers = Headers([(k.encode(), str(v).encode()) for k, v in request.headers.items()])
    return split.path, split.query, headers


def _verify(method: str, path: str, query: str, headers: Headers) -> None:
    auth = ClientAuth(KeyTable([Key(ACCESS, SECRET)]), "us-east-1", clock=lambda: SIGNED_AT)
    auth.verify(method, path, query, headers)


def _refusal(method: str, path: str, query: str, headers: Headers) -> S3Error:
    with pytest.raises(S3Error) as info:
        _verify(method, path, query, headers)
    return info.value


def test_every_sub_resource_of_the_table_is_covered() -> None:
    assert {sub for _, _, sub in ROWS} <= set(SUBRESOURCES)
    assert len(ROWS) > 60


@pytest.mark.parametrize("presigned", [False, True], ids=["header", "presigned"])
@pytest.mark.parametrize(("method", "path", "sub"), ROWS)
def test_sigv2_signs_the_sub_resource_or_refuses_the_request(method, path, sub, presigned):
    """Signed with the sub-resource: accepted only if SigV2 covers it. Added after signing the
    plain request: a signature mismatch if covered, refused as unsupported if not."""
    signed = _v2(method, path, _add("", sub), presigned=presigned)
    if sub in sigv2.SIGNED_SUBRESOURCES:
        _verify(method, *signed)
    else:
        error = _refusal(method, *signed)
        assert (error.code, error.status, error.message) == (
            "InvalidRequest",
            400,
            sigv2.NOT_SUPPORTED,
        )

    plain_path, plain_query, headers = _v2(method, path, "", presigned=presigned)
    error = _refusal(method, plain_path, _add(plain_query, sub), headers)
    expected = "SignatureDoesNotMatch" if sub in sigv2.SIGNED_SUBRESOURCES else "InvalidRequest"
    assert error.code == expected, sub


@pytest.mark.parametrize("presigned", [False, True], ids=["header", "presigned"])
@pytest.mark.parametrize(
    "added", [*SUBRESOURCES, "prefix=a", "max-keys=1", "versionId=v1", "x-id=PutObject"]
)
def test_sigv4_refuses_any_query_parameter_added_after_signing(added, presigned):
    path, query, headers = _v4("PUT", "/bucket/key.txt", "", presigned=presigned)
    _verify("PUT", path, query, headers)  # as signed
    error = _refusal("PUT", path, _add(query, added), headers)
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)


def test_the_sub_resources_sigv2_leaves_out_are_the_newer_ones() -> None:
    """The ones the security report found open: each is refused, none silently forwarded."""
    left_out = {s for s in SUBRESOURCES if s not in sigv2.SIGNED_SUBRESOURCES}
    assert {
        "legal-hold",
        "retention",
        "publicAccessBlock",
        "encryption",
        "ownershipControls",
        "policyStatus",
        "intelligent-tiering",
        "attributes",
    } <= left_out
    assert "acl" not in left_out and "uploadId" not in left_out
