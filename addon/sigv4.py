"""SigV4 for S3 on botocore: one canonical form for verifying clients and signing for backends.

Verifying a client's signature and re-signing for a backend are the same computation with
different keys. botocore's `S3SigV4Auth` does it; we only pin what differs for a proxy: the
headers to sign are given (the client's SignedHeaders), the payload hash is the one the client
declared (the body streams past us), and path and query are put in S3's canonical encoding,
which is also the encoding we forward, so that every backend computes the same canonical request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote, unquote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def canonical_path(raw_path: str) -> str:
    """S3's canonical URI: each segment decoded, then encoded once (RFC 3986 unreserved kept).

    Clients differ in what they leave unencoded (s3cmd sends `(` raw, botocore sends `%28`); S3
    compares the decoded form, and so must we. An encoded slash stays inside its segment.
    """
    return "/".join(quote(unquote(s), safe="~") for s in raw_path.split("/"))


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Decoded key/value pairs in wire order; `+` is a literal plus, as in S3 (not a space)."""
    pairs = []
    for item in raw_query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """S3's canonical query string: encoded pairs sorted by key, then value."""
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


class _Signer(S3SigV4Auth):
    """S3SigV4Auth with the signed header names and the payload hash fixed by the caller."""

    def __init__(
        self,
        credentials: Credentials,
        region: str,
        signed_headers: Sequence[str],
        payload_hash: str,
    ) -> None:
        super().__init__(credentials, "s3", region)
        self._signed = [h.lower() for h in signed_headers]
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        selected = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or [""]:
                selected[name] = value
        return selected

    def canonical_query_string(self, request: AWSRequest) -> str:
        return request.url.partition("?")[2]  # already canonical: see `canonical_query`

    def _normalize_url_path(self, path: str) -> str:
        return path  # already canonical: see `canonical_path`

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def _request(method: str, host: str, path: str, query: str, headers: Iterable[tuple[str, str]]):
    request = AWSRequest(method=method, url=f"http://{host}{path}?{query}")
    for name, value in headers:
        request.headers.add_header(name, value)
    _replace(request, "Host", host)
    return request


def _replace(request: AWSRequest, name: str, value: str) -> None:
    del request.headers[name]  # HTTPHeaders appends on assignment; removes every copy
    request.headers[name] = value


def compute_signature(
    *,
    secret: str,
    region: str,
    timestamp: str,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The signature a client holding `secret` must have sent (path and query canonical)."""
    signer = _Signer(Credentials("", secret), region, signed_headers, payload_hash)
    request = _request(method, host, path, query, headers)
    _replace(request, "X-Amz-Content-SHA256", payload_hash)
    request.context["timestamp"] = timestamp
    return signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )


def sign_headers(
    *,
    access: str,
    secret: str,
    region: str,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> dict[str, str]:
    """Sign a request now for `access`/`secret`; returns the headers to set on it.

    `signed_headers` are signed besides host, x-amz-date and x-amz-content-sha256.
    """
    names = sorted({*signed_headers, "host", "x-amz-date", "x-amz-content-sha256"} - {"date"})
    signer = _Signer(Credentials(access, secret), region, names, payload_hash)
    # Without Date, botocore dates the request with X-Amz-Date (with it, it rewrites Date instead).
    request = _request(
        method, host, path, query, [(n, v) for n, v in headers if n.lower() != "date"]
    )
    signer.add_auth(request)  # sets X-Amz-Date, X-Amz-Content-SHA256 and Authorization
    return {
        "X-Amz-Date": request.headers["X-Amz-Date"],
        "X-Amz-Content-SHA256": request.headers["X-Amz-Content-SHA256"],
        "Authorization": request.headers["Authorization"],
    }
