"""SIGTERM drains (a large transfer in flight finishes, no new connection is taken, the wait is
bounded); SIGHUP and option updates reload the config, refusing a bad one and keeping the old."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import time

import pytest
from botocore.exceptions import ClientError

from addon.migration.copy_on_read import ABORT_WAIT
from tests.support.direct import put_direct
from tests.support.faulty_backends import LateAnswer
from tests.support.migration import migrating_config
from tests.support.proxy import write_config

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
LARGE = os.urandom(24 * MIB)
SMALL = os.urandom(100_000)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_for(condition, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def large(backends, bucket) -> str:
    put_direct(backends[0], bucket, "large", LARGE)
    return "large"


def test_sigterm_lets_a_large_transfer_finish_and_takes_no_new_connection(
    backends, run_proxy, tmp_path, bucket, large
):
    proxy = run_proxy(write_config(tmp_path / "c.json", backends[:2]), "s3multi_drain_timeout=60")
    body = proxy.client().get_object(Bucket=bucket, Key=large)["Body"]
    digest = hashlib.sha256(body.read(MIB))
    proxy.process.send_signal(signal.SIGTERM)
    wait_for(lambda: refuses_connections(proxy.port), "the proxy to stop listening")
    while piece := body.read(MIB):  # slowly: the drain waits for it
        digest.update(piece)
        time.sleep(0.01)
    assert digest.hexdigest() == hashlib.sha256(LARGE).hexdigest()
    assert proxy.process.wait(timeout=15) == 0
    log = proxy.log()
    assert (
        "draining: no new connections, 1 requests in flight, 0 copies on read running, up to 60s"
        in log
    )
    assert "drained, stopping" in log


def test_the_drain_is_bounded_by_its_timeout(backends, run_proxy, tmp_path, bucket, large):
    proxy = run_proxy(write_config(tmp_path / "c.json", backends[:2]), "s3multi_drain_timeout=2")
    body = proxy.client().get_object(Bucket=bucket, Key=large)["Body"]
    body.read(MIB)  # then nothing more: the transfer never ends by itself
    signalled = time.monotonic()
    proxy.process.send_signal(signal.SIGTERM)
    assert proxy.process.wait(timeout=15) == 0
    assert 2 <= time.monotonic() - signalled < 10
    assert "drain timeout (2s): stopping with 1 requests in flight" in proxy.log()
    body.close()


def copied_through_a_slow_primary(backends, run_proxy, tmp_path, bucket, primary, timeout: int):
    """A proxy whose primary is the fake `primary` and whose secondary copies on read, after a
    whole read of an object only the secondary has, and SIGTERM at once."""
    secondary = backends[1]
    secondary.client().create_bucket(Bucket=bucket)
    secondary.client().put_object(Bucket=bucket, Key="moved", Body=SMALL)
    config = migrating_config(tmp_path / "c.json", [primary, secondary], meta="")
    proxy = run_proxy(config, f"s3multi_drain_timeout={timeout}")
    assert proxy.client().get_object(Bucket=bucket, Key="moved")["Body"].read() == SMALL
    proxy.process.send_signal(signal.SIGTERM)
    return proxy


def test_a_drain_waits_for_a_copy_on_read_to_land(backends, run_proxy, tmp_path, bucket):
    # The primary takes 2 s to answer the copy's PUT: the requests are over long before.
    with LateAnswer(hashlib.md5(SMALL).hexdigest(), delay=2.0) as primary:
        proxy = copied_through_a_slow_primary(backends, run_proxy, tmp_path, bucket, primary, 30)
        assert proxy.process.wait(timeout=20) == 0
        puts = [r for r in primary.requests if r.method == "PUT"]
    log = proxy.log()
    assert len(puts) == 1 and puts[0].complete and puts[0].body_bytes == len(SMALL)
    landed = log.index(f"/{bucket}/moved copied from secondary to late")
    assert re.search(r"draining: no new connections, \d requests in flight, 1 copies on read", log)
    assert landed < log.index("drained, stopping")


def test_a_copy_on_read_past_the_drain_timeout_is_cut_short(backends, run_proxy, tmp_path, bucket):
    with LateAnswer("never", delay=60) as primary:  # takes the PUT, answers after the drain
        proxy = copied_through_a_slow_primary(backends, run_proxy, tmp_path, bucket, primary, 2)
        signalled = time.monotonic()
        assert proxy.process.wait(timeout=20) == 0
        assert 2 <= time.monotonic() - signalled < 2 + ABORT_WAIT + 3
    log = proxy.log()
    assert f"copy-on-read of /{bucket}/moved from secondary cut short: the proxy stops" in log
    assert "drain timeout (2s): 1 copies on read cut short" in log
    assert "drained, stopping" not in log


def test_sighup_reloads_the_config_and_keeps_it_when_the_new_one_is_bad(
    backends, run_proxy, tmp_path, bucket, large
):
    primary, secondary, tertiary = backends
    config = write_config(tmp_path / "c.json", [primary, secondary])
    proxy = run_proxy(config)
    put_direct(tertiary, bucket, "third", b"only the tertiary has it")
    client = proxy.client()
    with pytest.raises(ClientError):
        client.get_object(Bucket=bucket, Key="third")
    download = client.get_object(Bucket=bucket, Key=large)["Body"]
    digest = hashlib.sha256(download.read(MIB))

    write_config(config, [primary, secondary, tertiary])
    proxy.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded on SIGHUP" in proxy.log(), "the reload")
    assert client.get_object(Bucket=bucket, Key="third")["Body"].read() == (
        b"only the tertiary has it"
    )

    config.write_text(json.dumps({"backends": [{"name": "x", "secret": "NEW-SECRET-VALUE"}]}))
    proxy.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in proxy.log(), "the refusal")
    refusals = [line for line in proxy.log().splitlines() if "reload refused" in line]
    assert len(refusals) == 1
    assert "the running config stays: " in refusals[0]
    assert 'backends[0] ("x"): access: is required' in refusals[0]
    assert "NEW-SECRET-VALUE" not in proxy.log()
    assert client.get_object(Bucket=bucket, Key="third")["Body"].read() == (
        b"only the tertiary has it"
    )

    # The transfer begun before both reloads went on, on its connection.
    while piece := download.read(4 * MIB):
        digest.update(piece)
    assert digest.hexdigest() == hashlib.sha256(LARGE).hexdigest()
