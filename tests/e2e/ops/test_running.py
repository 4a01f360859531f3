"""The ways users run it, and backends that are down: s3-multi command, aws CLI, bad configs."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time

import pytest
from botocore.exceptions import ClientError
from mitmproxy import io

from addon.local.servers import free_port
from tests.support.direct import put_direct
from tests.support.faulty_backends import Blackhole
from tests.support.processes import VENV_BIN, aws_cli, child_env, dead_endpoint
from tests.support.proxy import (
    WEB_PASSWORD,
    mitmdump_command,
    proxy_env,
    refused_to_start,
    start_mitmweb,
    start_proxy,
    start_s3_multi,
    write_config,
)
from tests.support.raw_http import fetch
from tests.support.root_keys import ROOT_SECRET
from tests.support.status import status

pytestmark = pytest.mark.e2e


def test_unreachable_fallback_is_skipped(backends, run_proxy, tmp_path, bucket):
    primary, secondary, _ = backends
    proxy = run_proxy(write_config(tmp_path / "c.json", [primary, dead_endpoint(), secondary]))
    primary.client().create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "k", b"behind a dead backend")
    client = proxy.client()

    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"behind a dead backend"
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket=bucket, Key="nowhere")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    assert "down-1 unreachable" in proxy.log()


def test_unreachable_last_fallback_keeps_the_last_not_found(backends, run_proxy, tmp_path, bucket):
    primary = backends[0]
    proxy = run_proxy(write_config(tmp_path / "c.json", [primary, dead_endpoint()]))
    primary.client().create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as missing:
        proxy.client().get_object(Bucket=bucket, Key="nowhere")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


def test_unreachable_primary_is_an_s3_503_and_listing_shows_the_rest(
    backends, run_proxy, tmp_path, bucket
):
    secondary = backends[1]
    proxy = run_proxy(write_config(tmp_path / "c.json", [dead_endpoint(), secondary]))
    secondary.client().create_bucket(Bucket=bucket)
    client = proxy.client()

    for call in (
        lambda: client.put_object(Bucket=bucket, Key="k", Body=b"x"),
        lambda: client.get_object(Bucket=bucket, Key="k"),
    ):
        with pytest.raises(ClientError) as got:
            call()
        assert got.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert got.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert not secondary.client().list_objects_v2(Bucket=bucket).get("Contents")


@pytest.mark.parametrize("kind", ["refused", "blackholed"])
def test_a_primary_that_does_not_answer_is_said_at_start_and_the_proxy_serves(
    backends, run_proxy, tmp_path, kind
):
    with contextlib.ExitStack() as stack:
        if kind == "refused":
            endpoint, reason = dead_endpoint(), "unreachable: "
        else:
            endpoint, reason = stack.enter_context(Blackhole()).endpoint, "no answer within 3s"
        proxy = run_proxy(write_config(tmp_path / "c.json", [endpoint, backends[1]]))
        # Serving at once: the start never waits for the check.
        assert status(proxy.port, "/-/healthy").status == 200
        line = f"the primary, down-0 ({endpoint}), does not answer at start: {reason}"
        deadline = time.monotonic() + 10
        while line not in proxy.log():
            assert time.monotonic() < deadline, proxy.log()
            time.sleep(0.1)
        assert status(proxy.port, "/-/ready").status == 503
        assert status(proxy.port, "/-/healthy").status == 200
    said = [row for row in proxy.log().splitlines() if "down-0" in row and "answer" in row]
    assert len(said) == 1, said  # once: readiness' own probes say nothing more
    assert said[0].endswith("; starting anyway (/-/ready says not ready until it does)")


def aws(proxy_endpoint: str, *args: str) -> bytes:
    return aws_cli("--endpoint-url", proxy_endpoint, *args)


@pytest.mark.slow
@pytest.mark.client("aws CLI", "HTTP: mb, cp, s3api, a fallback read")
def test_aws_cli_writes_to_primary_and_reads_from_fallback(proxy, backends, bucket, tmp_path):
    primary, secondary, _ = backends
    aws(proxy.endpoint, "s3", "mb", f"s3://{bucket}")
    upload = tmp_path / "up.bin"
    upload.write_bytes(bytes(range(256)) * 4096)
    aws(proxy.endpoint, "s3", "cp", str(upload), f"s3://{bucket}/up.bin")
    put_direct(secondary, bucket, "fallback.txt", b"served by the secondary\n")

    downloaded = tmp_path / "down.bin"
    aws(proxy.endpoint, "s3", "cp", f"s3://{bucket}/up.bin", str(downloaded))
    assert downloaded.read_bytes() == upload.read_bytes()
    assert primary.client().get_object(Bucket=bucket, Key="up.bin")["Body"].read() == (
        upload.read_bytes()
    )
    out = aws(proxy.endpoint, "s3", "cp", f"s3://{bucket}/fallback.txt", "-")
    assert out == b"served by the secondary\n"
    listing = aws(proxy.endpoint, "s3api", "list-objects-v2", "--bucket", bucket)
    keys = [o["Key"] for o in json.loads(listing)["Contents"]]
    assert keys == ["fallback.txt", "up.bin"]  # every backend's


@pytest.mark.client("boto3", "through the s3-multi command")
def test_s3_multi_command_serves_and_stops_on_ctrl_c(backends, tmp_path, bucket):
    config = write_config(tmp_path / "c.json", backends[:2])
    proxy = start_s3_multi(config, tmp_path)
    port = proxy.port
    try:
        put_direct(backends[1], bucket, "k", b"via the command")
        assert (
            proxy.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"via the command"
        )
    finally:
        assert proxy.stop() == 0
    log = proxy.log()
    assert f"GetObject /{bucket}/k via [primary 404" in log
    assert ROOT_SECRET not in log and backends[1].secret not in log
    # The reverse-mode placeholder target is never contacted, and never shown.
    assert f"s3-multi listening at 127.0.0.1:{port}." in log
    assert "127.0.0.1:1 " not in log and "127.0.0.1:1." not in log


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"backends": []}, "backends"),
        ({"backends": [{"name": "p", "secret": "SECRET-VALUE-1"}]}, 'backends[0] ("p"): access'),
        (
            {"backends": [{"name": "p", "access": "AK", "secret": "SECRET-VALUE-1", "x": 1}]},
            "unknown field 'x'",
        ),
        (
            {"backends": [{"access": "AK", "secret": "SECRET-VALUE-1", "endpoint": "ftp://h"}]},
            "endpoint",
        ),
    ],
)
def test_bad_config_stops_both_commands_with_one_clear_line(tmp_path, document, expected):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps(document))
    port = free_port()
    runs = {
        "s3-multi": [
            str(VENV_BIN / "s3-multi"),
            "--config",
            str(config),
            "--port",
            f"127.0.0.1:{port}",
        ],
        "mitmdump": mitmdump_command(config, port, tmp_path / "mitmproxy"),
    }
    for output in refused_to_start(runs).values():
        assert expected in output, output
        assert "SECRET-VALUE-1" not in output and ROOT_SECRET not in output


def test_unconfigured_mitmdump_does_not_start(tmp_path):
    command = mitmdump_command(None, free_port(), tmp_path)
    done = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=60)
    assert done.returncode != 0
    assert "s3-multi is not configured (set s3multi_config, s3multi_access, s3multi_secret)" in (
        done.stdout + done.stderr
    )


@pytest.mark.client("mitmweb", "each flow's comment names the backends tried")
def test_mitmweb_shows_which_backends_each_flow_tried(backends, tmp_path, bucket):
    """Under mitmweb, a developer sees fallback happen: each flow's comment names the backends."""
    proxy, web_port = start_mitmweb(backends[:2], tmp_path)
    try:
        put_direct(backends[1], bucket, "seen.txt", b"watched")
        assert proxy.client().get_object(Bucket=bucket, Key="seen.txt")["Body"].read() == b"watched"
        answer = fetch(
            f"http://127.0.0.1:{web_port}/flows",
            headers=(("Authorization", f"Bearer {WEB_PASSWORD}"),),
        )
        assert answer.status == 200, answer.body
        flows = json.loads(answer.body)
    finally:
        proxy.stop()
    comments = [f["comment"] for f in flows if f["request"]["path"].startswith(f"/{bucket}/")]
    assert any(
        c.startswith(f"GetObject /{bucket}/seen.txt via [primary 404")
        and c.endswith("answered by secondary")
        for c in comments
    ), comments


def test_flows_can_be_saved_for_later(backends, tmp_path, bucket):
    """`mitmdump -w` (and mitmweb's export) deep-copy flow.metadata: the addon keeps its
    per-flow state beside the flow, so saving works and the comments come along."""
    config = write_config(tmp_path / "c.json", backends[:2])
    port, saved = free_port(), tmp_path / "flows.mitm"
    command = [*mitmdump_command(config, port, tmp_path / "mitmproxy"), "-w", str(saved)]
    proxy = start_proxy(command, tmp_path, proxy_env(), port)
    try:
        put_direct(backends[1], bucket, "kept.txt", b"kept")
        backends[0].client().create_bucket(Bucket=bucket)
        client = proxy.client()
        client.get_object(Bucket=bucket, Key="kept.txt")
        client.put_object(Bucket=bucket, Key="new.txt", Body=b"new")
        with pytest.raises(ClientError):
            proxy.client(secret="wrong").get_object(Bucket=bucket, Key="kept.txt")
    finally:
        assert proxy.stop() == 0
    assert "Addon error" not in proxy.log()
    with saved.open("rb") as f:
        comments = [flow.comment for flow in io.FlowReader(f).stream()]
    assert any(c.endswith("answered by secondary") for c in comments), comments
    assert "refused: SignatureDoesNotMatch" in comments
