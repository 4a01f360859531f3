"""Virtual-hosted requests from clients: `Host: bucket.<domain>`, with the domain an option."""

from __future__ import annotations

import hashlib
import http.client

import pytest

from addon import sigv4
from tests.conftest import ROOT_ACCESS, ROOT_SECRET, write_config
from tests.test_routing import put_direct

DOMAIN = "s3.test"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _tmp_sign_headers(access, secret, region, timestamp=None, **kw):
    return sigv4.sign(access, secret, region, sigv4.RequestParts(**kw), timestamp).headers


@pytest.fixture(scope="module")
def virtual_proxy(backends, run_proxy, tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("virtual") / "c.json", backends[:2])
    return run_proxy(config, f"s3multi_domain={DOMAIN},other.example")


def request(proxy, method: str, bucket: str, path: str, body: bytes = b"", query: str = ""):
    """Signed for Host bucket.s3.test:port, sent to 127.0.0.1 (no DNS needed)."""
    host = f"{bucket}.{DOMAIN}:{proxy.port}"
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"Content-Type": "text/plain"} if body else {}
    headers.update(
        _tmp_sign_headers(
            access=ROOT_ACCESS,
            secret=ROOT_SECRET,
            region="us-east-1",
            method=method,
            host=host,
            path=sigv4.canonical_path(path),
            query=sigv4.canonical_query(sigv4.query_pairs(query)),
            headers=list(headers.items()),
            signed_headers=list(h.lower() for h in headers),
            payload_hash=payload_hash,
        )
    )
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    try:
        connection.putrequest(method, path + (f"?{query}" if query else ""), skip_host=True)
        connection.putheader("Host", host)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_virtual_hosted_put_lands_on_the_primary(virtual_proxy, backends, bucket):
    backends[0].client().create_bucket(Bucket=bucket)
    status, answer = request(virtual_proxy, "PUT", bucket, "/dir/v.txt", b"virtually hosted")
    assert status == 200, answer
    stored = backends[0].client().get_object(Bucket=bucket, Key="dir/v.txt")["Body"].read()
    assert stored == b"virtually hosted"


def test_virtual_hosted_read_falls_back(virtual_proxy, backends, bucket):
    put_direct(backends[1], bucket, "warm.txt", b"from the fallback")
    status, body = request(virtual_proxy, "GET", bucket, "/warm.txt")
    assert (status, body) == (200, b"from the fallback")
    status, listing = request(virtual_proxy, "GET", bucket, "/", query="list-type=2")
    assert status == 200 and b"<Key>warm.txt</Key>" in listing


def test_unknown_domains_are_path_style(virtual_proxy, backends, bucket):
    """Host names outside the configured domains address no bucket: the path does."""
    backends[0].client().create_bucket(Bucket=bucket)
    put_direct(backends[0], bucket, "p.txt", b"path style")
    host = f"127.0.0.1:{virtual_proxy.port}"
    headers = _tmp_sign_headers(
        access=ROOT_ACCESS,
        secret=ROOT_SECRET,
        region="us-east-1",
        method="GET",
        host=host,
        path=f"/{bucket}/p.txt",
        query="",
        headers=[],
        signed_headers=[],
        payload_hash=EMPTY_SHA256,
    )
    connection = http.client.HTTPConnection("127.0.0.1", virtual_proxy.port, timeout=20)
    connection.request("GET", f"/{bucket}/p.txt", headers=headers)
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"path style")
    connection.close()
