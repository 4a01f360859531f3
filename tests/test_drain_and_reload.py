"""SIGTERM drains (a large transfer in flight finishes, no new connection is taken, the wait is
bounded); SIGHUP and option updates reload the config, refusing a bad one and keeping the old."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import time

import pytest
from botocore.exceptions import ClientError

from tests.support.direct import put_direct
from tests.support.proxy import write_config

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
LARGE = os.urandom(24 * MIB)


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
    assert "draining: no new connections, 1 requests in flight, up to 60s" in log
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
