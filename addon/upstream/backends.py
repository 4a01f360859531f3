"""Where a request goes on one backend, and the request re-signed with that backend's keys."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from addon.config.settings import Backend
from addon.s3 import sigv4

if TYPE_CHECKING:
    from mitmproxy import tls

# Client headers that belong to the client's signature or connection, not to the request.
_NOT_FORWARDED = frozenset(
    {"authorization", "x-amz-date", "date", "x-amz-security-token", "x-amz-content-sha256"}
)
_CHECKSUM_HEADER = re.compile(r"x-amz-(checksum-.*|sdk-checksum-algorithm)")
# Buckets that can be a DNS label under the endpoint; others go path-style, as the SDKs do.
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class Location:
    scheme: str
    host: str
    port: int
    authority: str  # the Host header: host, with the port when it is not the scheme's default
    path: str  # canonical path and query, as sent


@functools.lru_cache(maxsize=64)
def _endpoint(endpoint: str) -> tuple[str, str, int, bool, str]:
    """scheme, host, port, whether the port is explicit, path prefix (parsed once)."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.hostname or "", port, url.port is not None, url.path.rstrip("/")


def locate(backend: Backend, bucket: str | None, key_path: str, query: str) -> Location:
    """The backend URL of `/bucket/key_path?query` (key_path canonical, may be "")."""
    scheme, host, port, explicit_port, prefix = _endpoint(backend.endpoint)
    if bucket is None:
        path = prefix + "/"
    elif backend.use_path_style or not _DNS_BUCKET.fullmatch(bucket):
        path = f"{prefix}/{quote(bucket, safe='')}" + (f"/{key_path}" if key_path else "")
    else:
        host = f"{bucket}.{host}"
        path = f"{prefix}/{key_path}"
    authority = f"{host}:{port}" if explicit_port else host
    return Location(scheme, host, port, authority, f"{path}?{query}" if query else path)


def serves(backend: Backend, address: tuple[str, int]) -> bool:
    """Whether a connection to `address` goes to `backend` (virtual-hosted: bucket.host)."""
    _, name, port, _, _ = _endpoint(backend.endpoint)
    host = address[0]
    return port == address[1] and (host == name or host.endswith("." + name))


def connect_timeout(backend_list: Iterable[Backend], address: tuple[str, int]) -> float | None:
    """The connectTimeout for connections to `address` (the longest, if several backends share
    it); None when no backend is there."""
    timeouts = [b.connect_timeout for b in backend_list if serves(b, address)]
    return max(timeouts) if timeouts else None


def skips_tls_verify(backend_list: Iterable[Backend], address: tuple[str, int]) -> bool:
    """Whether a TLS connection to `address` goes to backends that all set sslSkipVerify.

    Per connection, not per process: one backend's self-signed certificate must not switch
    verification off for the others (mitmproxy's ssl_insecure would).
    """
    serving = [b for b in backend_list if b.endpoint.startswith("https://") and serves(b, address)]
    return bool(serving) and all(b.ssl_skip_verify for b in serving)


def verify_tls_as_configured(data: tls.TlsData, backend_list: Iterable[Backend]) -> None:
    """mitmproxy's `tls_start_server` hook: sslSkipVerify, for that backend's connections only
    (not mitmproxy's ssl_insecure, which would switch verification off for every backend)."""
    # Imported here, not above: the commands' own clients (`BackendClient`) import this module,
    # and mitmproxy and pyOpenSSL are a third of a command's start-up.
    from mitmproxy import connection, ctx
    from OpenSSL import SSL

    address = data.conn.address if isinstance(data.conn, connection.Server) else None
    if address is None or not skips_tls_verify(backend_list, address):
        return
    if data.ssl_conn is None:  # mitmproxy's own TLS setup (SNI, ALPN, ciphers) first
        ctx.master.addons.get("tlsconfig").tls_start_server(data)
    # Whether mitmproxy's tlsconfig ran before this hook or not (its place among the addons
    # differs between `mitmdump -s` and the s3-multi command).
    assert data.ssl_conn is not None
    data.ssl_conn.set_verify(SSL.VERIFY_NONE)


def forwarded_headers(
    backend: Backend, headers: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The client's headers that go on to `backend` (Host is replaced by the caller)."""
    kept = []
    for name, value in headers:
        lname = name.lower()
        if lname in _NOT_FORWARDED or lname == "host":
            continue
        if backend.disable_checksum and _CHECKSUM_HEADER.fullmatch(lname):
            continue
        kept.append((name, value))
    return kept


def sign(
    backend: Backend,
    method: str,
    location: Location,
    headers: Sequence[tuple[str, str]],
    client_signed: Iterable[str],
    payload_hash: str,
) -> sigv4.Signed:
    """This request signed for `backend` (its headers: Authorization, X-Amz-Date, ...).

    What the client signed and we forward is signed again, so a backend rejects the same
    tampering that we would.
    """
    forwarded = {name.lower() for name, _ in headers}
    path, _, query = location.path.partition("?")
    parts = sigv4.RequestParts(
        method,
        location.authority,
        path,
        query,
        headers,
        [h for h in client_signed if h in forwarded],
        payload_hash,
    )
    return sigv4.sign(backend.access, backend.secret, backend.region, parts)
