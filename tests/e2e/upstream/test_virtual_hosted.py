"""Virtual-hosted requests from clients: `Host: bucket.<domain>`, with the domain an option."""

from __future__ import annotations

import pytest

from tests.support.direct import put_direct
from tests.support.proxy import write_config
from tests.support.raw_http import Answer, Request, send
from tests.support.signing import sigv4

pytestmark = pytest.mark.e2e

DOMAIN = "s3.test"


@pytest.fixture(scope="module")
def virtual_proxy(backends, run_proxy, tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("virtual") / "c.json", backends[:2])
    return run_proxy(config, f"s3multi_domain={DOMAIN},other.example")


def request(
    proxy, method: str, bucket: str | None, path: str, body: bytes = b"", query: str = ""
) -> Answer:
    """Signed by botocore for Host bucket.s3.test:port (127.0.0.1:port without a bucket), sent
    to 127.0.0.1 (no DNS needed)."""
    host = f"{bucket}.{DOMAIN}:{proxy.port}" if bucket else f"127.0.0.1:{proxy.port}"
    headers = [("Host", host)] + ([("Content-Type", "text/plain")] if body else [])
    signed = sigv4(Request(method, path, query, tuple(headers), body))
    return send(proxy.port, signed.add("Content-Length", str(len(body))))


def test_virtual_hosted_put_lands_on_the_primary(virtual_proxy, backends, bucket):
    backends[0].client().create_bucket(Bucket=bucket)
    answer = request(virtual_proxy, "PUT", bucket, "/dir/v.txt", b"virtually hosted")
    assert answer.status == 200, answer.body
    stored = backends[0].client().get_object(Bucket=bucket, Key="dir/v.txt")["Body"].read()
    assert stored == b"virtually hosted"


def test_virtual_hosted_read_falls_back(virtual_proxy, backends, bucket):
    put_direct(backends[1], bucket, "warm.txt", b"from the fallback")
    answer = request(virtual_proxy, "GET", bucket, "/warm.txt")
    assert (answer.status, answer.body) == (200, b"from the fallback")
    listing = request(virtual_proxy, "GET", bucket, "/", query="list-type=2")
    assert listing.status == 200 and b"<Key>warm.txt</Key>" in listing.body


def test_unknown_domains_are_path_style(virtual_proxy, backends, bucket):
    """Host names outside the configured domains address no bucket: the path does."""
    backends[0].client().create_bucket(Bucket=bucket)
    put_direct(backends[0], bucket, "p.txt", b"path style")
    answer = request(virtual_proxy, "GET", None, f"/{bucket}/p.txt")
    assert (answer.status, answer.body) == (200, b"path style")
