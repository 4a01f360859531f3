"""The proxy's own status paths, through `mitmdump -s addon/multi.py` as operators run it:
liveness and readiness before authentication, and the metrics, scraped and checked against the
traffic the test made."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from addon.ops.status_paths import TTL
from tests.support.direct import put_direct
from tests.support.faulty_backends import Hang
from tests.support.processes import dead_endpoint
from tests.support.proxy import write_config
from tests.support.root_keys import ROOT_SECRET
from tests.support.status import sample
from tests.support.status import status as ask

pytestmark = pytest.mark.e2e
LISTING = b"<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>"


def status(proxy, path: str, host: str | None = None, method: str = "GET"):
    return ask(proxy.port, path, host, method)


def test_liveness_and_readiness_need_no_keys_and_name_no_secret(backends, run_proxy, tmp_path):
    proxy = run_proxy(write_config(tmp_path / "c.json", backends))
    alive = status(proxy, "/-/healthy")
    assert alive.status == 200 and json.loads(alive.body) == {"status": "alive"}
    ready = status(proxy, "/-/ready")
    assert ready.status == 200, ready.body
    body = json.loads(ready.body)
    assert body["status"] == "ready"
    assert [(b["name"], b["role"], b["up"]) for b in body["backends"]] == [
        ("primary", "primary", True),
        ("secondary", "fallback", True),
        ("tertiary", "fallback", True),
    ]
    for secret in (ROOT_SECRET, *(b.secret for b in backends), *(b.access for b in backends)):
        assert secret.encode() not in ready.body
    assert backends[0].endpoint.encode() not in ready.body
    head = status(proxy, "/-/ready", method="HEAD")
    assert head.status == 200 and head.trailing == b""


def test_a_fallback_down_is_degraded_and_still_ready(backends, run_proxy, tmp_path):
    proxy = run_proxy(write_config(tmp_path / "c.json", [backends[0], dead_endpoint()]))
    ready = status(proxy, "/-/ready")
    assert ready.status == 200
    body = json.loads(ready.body)
    assert body["status"] == "degraded"
    states = [(b["name"], b["up"]) for b in body["backends"]]
    assert states == [("primary", True), ("down-1", False)]
    assert proxy.log().count("backend down-1 is down: ") == 1  # health's line, once
    assert "Connect call failed" in proxy.log() and "(at once)" in proxy.log()


def test_the_primary_down_is_not_ready(backends, run_proxy, tmp_path):
    proxy = run_proxy(write_config(tmp_path / "c.json", [dead_endpoint(), backends[1]]))
    ready = status(proxy, "/-/ready")
    assert ready.status == 503
    assert json.loads(ready.body)["status"] == "not ready"
    assert status(proxy, "/-/healthy").status == 200  # alive all the same


def test_readiness_asks_the_primary_at_most_once_per_ttl(run_proxy, tmp_path):
    with Hang(answers={"/": LISTING}, name="primary") as primary:
        proxy = run_proxy(write_config(tmp_path / "c.json", [primary]))
        answers = [status(proxy, "/-/ready").status for _ in range(5)]
        assert answers == [200] * 5
        assert [r.path for r in primary.requests] == ["/"]
        assert primary.requests[0].target == "/?max-buckets=1"
        time.sleep(TTL + 0.2)
        assert status(proxy, "/-/ready").status == 200
        assert len(primary.requests) == 2


def test_a_status_path_in_a_virtual_hosted_bucket_is_a_key(backends, run_proxy, tmp_path):
    """`Host: bucket.DOMAIN` + `/-/ready` is the key `-/ready`: S3, so it must be signed."""
    proxy = run_proxy(write_config(tmp_path / "c.json", backends), "s3multi_domain=s3.test")
    answer = status(proxy, "/-/ready", host=f"bkt.s3.test:{proxy.port}")
    assert answer.status == 403 and b"<Code>AccessDenied</Code>" in answer.body


def test_metrics_count_the_traffic_made(backends, run_proxy, tmp_path, bucket):
    secondary = backends[1]
    proxy = run_proxy(write_config(tmp_path / "c.json", backends))
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="on-primary", Body=b"p" * 10)
    sizes = {f"only-on-secondary-{i}": 100 + i for i in range(3)}
    for key, size in sizes.items():
        put_direct(secondary, bucket, key, b"s" * size)
    for key in sizes:
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"s" * sizes[key]
    assert client.get_object(Bucket=bucket, Key="on-primary")["Body"].read() == b"p" * 10
    for _ in range(2):
        with pytest.raises(ClientError):
            proxy.client(secret="wrong").get_object(Bucket=bucket, Key="on-primary")

    scraped = status(proxy, "/-/metrics")
    assert scraped.status == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = scraped.body.decode()
    assert sample(text, "s3multi_fallback_hits_total", backend="secondary") == 3
    assert sample(text, "s3multi_fallback_hits_total", backend="tertiary") == 0
    assert sample(text, "s3multi_requests_total", operation="GetObject", status="200") == 4
    assert sample(text, "s3multi_requests_total", operation="PutObject", status="200") == 1
    assert sample(text, "s3multi_requests_total", operation="unknown", status="403") == 2
    assert sample(text, "s3multi_refusals_total", reason="SignatureDoesNotMatch") == 2
    assert sample(text, "s3multi_request_duration_seconds_count", operation="GetObject") == 4
    # The primary: 1 PUT, 1 GET hit, 3 misses; the secondary: the 3 hits.
    assert sample(text, "s3multi_backend_requests_total", backend="primary", status="404") == 3
    assert sample(text, "s3multi_backend_requests_total", backend="secondary", status="200") == 3
    assert sample(text, "s3multi_backend_latency_seconds_count", backend="secondary") == 3
    moved = "s3multi_backend_bytes_total"
    assert sample(text, moved, backend="secondary", direction="received") == sum(sizes.values())
    assert sample(text, moved, backend="primary", direction="sent") == 10
    assert sample(text, "s3multi_in_flight_requests") == 1  # the scrape itself
    assert sample(text, "s3multi_processes") == 1
    # Bounded labels: no bucket or key is ever one.
    assert bucket not in text and "only-on-secondary" not in text


def test_metrics_count_backend_errors_by_kind(backends, run_proxy, tmp_path, bucket):
    primary = backends[0]
    proxy = run_proxy(write_config(tmp_path / "c.json", [primary, dead_endpoint()]))
    primary.client().create_bucket(Bucket=bucket)
    with pytest.raises(ClientError):
        proxy.client().get_object(Bucket=bucket, Key="nowhere")
    text = status(proxy, "/-/metrics").body.decode()
    assert sample(text, "s3multi_backend_errors_total", backend="down-1", error="unreachable") == 1
    assert sample(text, "s3multi_backend_requests_total", backend="down-1", status="none") == 1
    assert sample(text, "s3multi_requests_total", operation="GetObject", status="404") == 1
