"""A backend that keeps failing is marked down and skipped at once, probed in the background, and
used again as soon as a probe gets an answer; each change is logged once, shown in readiness and
in `s3multi_backend_up`. A hung backend is a moto server stopped with SIGSTOP (it accepts
connections and answers nothing), resumed with SIGCONT."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from addon.local.moto import MotoServer, start_moto_servers
from addon.upstream.health import PROBE_EVERY, PROBE_TIMEOUT
from tests.support.direct import put_direct
from tests.support.proxy import write_config
from tests.support.restartable import paused
from tests.support.status import sample, status

RESPONSE_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def servers() -> Iterator[list[MotoServer]]:
    """A primary and a fallback of this module's own: the fallback is paused here."""
    started = start_moto_servers(["primary", "hung"])
    yield started
    for server in started:
        server.stop()


def timed_get(client, bucket: str, key: str) -> tuple[int, bytes, float]:
    started = time.monotonic()
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        status_code = 200
    except ClientError as e:
        body, status_code = b"", e.response["ResponseMetadata"]["HTTPStatusCode"]
    return status_code, body, time.monotonic() - started


def test_a_hung_fallback_is_skipped_at_once_after_three_timeouts_and_used_after_a_probe(
    servers, run_proxy, tmp_path, bucket
):
    primary, hung = servers
    primary.client().create_bucket(Bucket=bucket)
    put_direct(hung, bucket, "only-on-hung", b"from the fallback")
    config = write_config(
        tmp_path / "c.json",
        servers,
        connectTimeout=1,
        responseTimeout=RESPONSE_TIMEOUT,
        idleTimeout=RESPONSE_TIMEOUT,
    )
    proxy = run_proxy(config)
    client = proxy.client()
    assert timed_get(client, bucket, "only-on-hung")[:2] == (200, b"from the fallback")

    with paused(hung.process):
        # Three reads wait for the fallback's timeout, each: then it is marked down.
        for _ in range(3):
            code, _, seconds = timed_get(client, bucket, "only-on-hung")
            assert code == 404 and seconds >= RESPONSE_TIMEOUT - 0.1
        skips = [timed_get(client, bucket, "only-on-hung") for _ in range(5)]
        assert [code for code, _, _ in skips] == [404] * 5
        slowest_skip = max(seconds for _, _, seconds in skips)
        assert slowest_skip < RESPONSE_TIMEOUT / 4, slowest_skip  # not tried at all
        log = proxy.log()
        assert log.count("backend hung is down: ") == 1
        assert (
            f"backend hung is down: timed out: no answer within {RESPONSE_TIMEOUT:g}s "
            f"(3 failures); requests skip it, probing every {PROBE_EVERY:g}s"
        ) in log
        assert "hung down (skipped)] answered by primary (not found anywhere)" in log
        ready = json.loads(status(proxy.port, "/-/ready").body)
        assert ready["status"] == "degraded"
        assert [(b["name"], b["up"]) for b in ready["backends"]] == [
            ("primary", True),
            ("hung", False),
        ]
        scraped = status(proxy.port, "/-/metrics").body.decode()
        assert sample(scraped, "s3multi_backend_up", backend="hung") == 0
        assert sample(scraped, "s3multi_backend_up", backend="primary") == 1
        time.sleep(PROBE_EVERY + PROBE_TIMEOUT)  # probes time out meanwhile: still down
        assert timed_get(client, bucket, "only-on-hung")[0] == 404
        resumed = time.monotonic()

    # Resumed: the next probe answers, and reads go to it again.
    while True:
        code, body, _ = timed_get(client, bucket, "only-on-hung")
        if code == 200:
            break
        assert time.monotonic() - resumed < PROBE_EVERY + PROBE_TIMEOUT + 5, "never used again"
        time.sleep(0.1)
    used_again_after = time.monotonic() - resumed
    assert body == b"from the fallback"
    log = proxy.log()
    assert log.count("backend hung is down: ") == 1
    assert log.count("backend hung is up again after ") == 1
    scraped = status(proxy.port, "/-/metrics").body.decode()
    assert sample(scraped, "s3multi_backend_up", backend="hung") == 1
    print(
        f"\nskipping the marked backend: at most {slowest_skip * 1000:.0f} ms a read "
        f"(its responseTimeout: {RESPONSE_TIMEOUT:g} s); used again {used_again_after:.1f} s "
        "after SIGCONT"
    )
