"""What mitmproxy's other addons and the client see of a request: one flow per client request,
with the answer the client got; a refusal said as one, and a connection closed after it said so.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from mitmproxy import io

from addon.local.servers import free_port
from tests.support.direct import put_direct
from tests.support.processes import VENV_BIN
from tests.support.proxy import mitmdump_command, proxy_env, start_proxy, write_config
from tests.support.raw_http import Connection, Request, send
from tests.support.root_keys import ROOT_SECRET
from tests.support.signing import sigv4

pytestmark = pytest.mark.e2e


def signed(method: str, port: int, path: str, body: bytes, secret: str = ROOT_SECRET) -> Request:
    """A request signed by botocore for `body` (hashed: x-amz-content-sha256)."""
    headers = (("Host", f"127.0.0.1:{port}"), ("Content-Type", "application/octet-stream"))
    return sigv4(Request(method, path, headers=headers, body=body), secret=secret).with_length()


def test_one_saved_flow_per_client_request_with_the_answer_it_got(backends, tmp_path, bucket):
    """`mitmdump -w` saves what the client saw: a fallback read and a ListBuckets over three
    backends are one flow each, never one per backend asked."""
    config = write_config(tmp_path / "c.json", backends)
    port, saved = free_port(), tmp_path / "flows.mitm"
    command = [*mitmdump_command(config, port, tmp_path / "mitmproxy"), "-w", str(saved)]
    proxy = start_proxy(command, tmp_path, proxy_env(), port)
    try:
        backends[0].client().create_bucket(Bucket=bucket)
        put_direct(backends[2], bucket, "cold.txt", b"from the tertiary")
        client = proxy.client()
        client.list_buckets()
        assert client.get_object(Bucket=bucket, Key="cold.txt")["Body"].read() == (
            b"from the tertiary"
        )
        with pytest.raises(ClientError):
            client.get_object(Bucket=bucket, Key="nowhere.txt")
    finally:
        assert proxy.stop() == 0
    with saved.open("rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert [(f.request.method, f.request.path.split("?")[0]) for f in flows] == [
        ("GET", "/"),
        ("GET", f"/{bucket}/cold.txt"),
        ("GET", f"/{bucket}/nowhere.txt"),
    ]
    listing, cold, nowhere = flows
    assert listing.response.status_code == 200 and bucket.encode() in listing.response.content
    assert listing.comment.startswith("ListBuckets / via [primary 200")
    # Answered by the proxy itself: shown at the gateway's address, not reverse mode's target.
    assert (listing.request.host, listing.request.port) == ("127.0.0.1", proxy.port)
    assert (cold.response.status_code, cold.response.content) == (200, b"from the tertiary")
    assert cold.request.port == backends[2].port  # the request as the answering backend got it
    assert cold.comment.endswith("answered by tertiary")
    assert nowhere.response.status_code == 404 and b"NoSuchKey" in nowhere.response.content


def test_an_upload_refused_while_streaming_is_summarised_as_refused(proxy, backends, bucket):
    backends[0].client().create_bucket(Bucket=bucket)
    signed_body = b"what was signed" * 40_000  # over 256 KiB: streamed, checked on its way
    sent_body = signed_body[:-7] + b"changed"
    tampered = replace(signed("PUT", proxy.port, f"/{bucket}/big.bin", signed_body), body=sent_body)
    answer = send(proxy.port, tampered)
    assert (answer.status, answer.error()["Code"]) == (400, "XAmzContentSHA256Mismatch")
    assert f"PutObject /{bucket}/big.bin via [primary refused: XAmzContentSHA256Mismatch" in (
        proxy.log()
    )
    assert "Contents" not in backends[0].client().list_objects_v2(Bucket=bucket)


def test_a_connection_closed_after_a_refusal_says_so_and_the_next_request_works(
    proxy, backends, bucket
):
    """A keep-alive client must learn from the answer that the connection ends with it."""
    backends[0].client().create_bucket(Bucket=bucket)
    body = b"x" * (1024 * 1024)
    bad = signed("PUT", proxy.port, f"/{bucket}/k", body, secret="not-the-root-secret")
    with Connection(proxy.port, timeout=30) as connection:
        refused = connection.exchange(bad)
    assert (refused.status, refused.error()["Code"]) == (403, "SignatureDoesNotMatch")
    assert refused.headers["Connection"] == "close"
    # The client reconnects because it was told; reusing the closed connection would fail.
    assert send(proxy.port, signed("PUT", proxy.port, f"/{bucket}/k", b"second try")).status == 200
    assert backends[0].client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"second try"


def test_the_root_secret_from_the_environment_is_not_in_the_option_listing(tmp_path):
    command = mitmdump_command(None, free_port(), tmp_path)[:3]  # mitmdump -s addon/multi.py
    done = subprocess.run(
        [*command, "--options"], capture_output=True, text=True, env=proxy_env(), timeout=60
    )
    assert "s3multi_secret" in done.stdout
    assert ROOT_SECRET not in done.stdout + done.stderr


def test_the_s3_multi_command_saves_flows_only_with_w_one_file_per_worker(
    backends, tmp_path, bucket
):
    """The command runs mitmproxy's flow saver only when asked (`-w`); each worker saves its
    own flows (FLOWS.1, FLOWS.2), with the addon's comments."""
    config = write_config(tmp_path / "c.json", backends[:2])
    port, saved = free_port(), tmp_path / "flows.mitm"
    command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--workers", "2"]
    command += ["--port", f"127.0.0.1:{port}", "-w", str(saved)]
    proxy = start_proxy(command, tmp_path, {**proxy_env(), "HOME": str(tmp_path)}, port)
    try:
        deadline = time.monotonic() + 60
        while proxy.log().count("listening at") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        put_direct(backends[1], bucket, "kept.txt", b"kept")
        for _ in range(6):  # new connections each: the kernel spreads them over the workers
            assert proxy.client().get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == (
                b"kept"
            )
    finally:
        assert proxy.stop() == 0
    assert not saved.exists()
    comments = []
    for n in (1, 2):
        with Path(f"{saved}.{n}").open("rb") as f:
            comments += [flow.comment for flow in io.FlowReader(f).stream()]
    assert len(comments) == 6, comments
    assert all(c.endswith("answered by secondary") for c in comments), comments
