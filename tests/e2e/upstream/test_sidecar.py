"""Sidecar: an application points HTTPS_PROXY at the proxy, keeps AWS's endpoint, signs with the
root keys; its S3 calls are served by the backends, its other traffic passes untouched."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from addon.local.servers import free_port
from tests.support.direct import put_direct
from tests.support.processes import aws_cli
from tests.support.proxy import mitmdump_command, proxy_env, start_proxy, write_config
from tests.support.raw_http import Request, send

pytestmark = pytest.mark.e2e

S3_DOMAINS = "s3.amazonaws.com,s3.us-east-1.amazonaws.com"
# TLS to other hosts is tunnelled, not intercepted.
ALLOW_HOSTS = r"(^|\.)s3(\.us-east-1)?\.amazonaws\.com(:\d+)?$"


@pytest.fixture(scope="module")
def sidecar(backends, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sidecar")
    config = write_config(workdir / "c.json", backends[:2])
    port, confdir = free_port(), workdir / "mitmproxy"
    command = mitmdump_command(config, port, confdir, sidecar=True)
    command += ["--allow-hosts", ALLOW_HOSTS, "--set", f"s3multi_domain={S3_DOMAINS}"]
    proxy = start_proxy(command, workdir, proxy_env(), port, confdir)
    yield proxy
    proxy.stop()


def aws(sidecar, *args: str) -> bytes:
    """The aws CLI as the application runs it: AWS's endpoint, the proxy in HTTPS_PROXY."""
    proxy_url = f"http://127.0.0.1:{sidecar.port}"
    return aws_cli(
        *args, AWS_CA_BUNDLE=sidecar.ca_file, HTTPS_PROXY=proxy_url, HTTP_PROXY=proxy_url
    )


@pytest.mark.client("aws CLI", "sidecar: HTTPS_PROXY, AWS endpoint")
def test_s3_calls_to_aws_are_served_by_the_backends(sidecar, backends, bucket, tmp_path):
    primary, secondary, _ = backends
    aws(sidecar, "s3", "mb", f"s3://{bucket}")
    source = tmp_path / "app.bin"
    source.write_bytes(b"written by the application" * 1000)
    aws(sidecar, "s3", "cp", str(source), f"s3://{bucket}/app.bin")
    put_direct(secondary, bucket, "archive.txt", b"kept on the secondary\n")

    assert primary.client().get_object(Bucket=bucket, Key="app.bin")["Body"].read() == (
        source.read_bytes()
    )
    assert aws(sidecar, "s3", "cp", f"s3://{bucket}/archive.txt", "-") == b"kept on the secondary\n"
    assert bucket.encode() in aws(sidecar, "s3", "ls")
    assert "answered by secondary" in sidecar.log()


def test_other_traffic_passes_untouched(sidecar, tmp_path):
    (tmp_path / "page.txt").write_bytes(b"not S3")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        # What an application sends its HTTP proxy: the absolute URL as the request target.
        answer = send(
            sidecar.port, Request("GET", f"http://{host}/page.txt", headers=(("Host", host),))
        )
        assert (answer.status, answer.body) == (200, b"not S3")
    finally:
        server.shutdown()
        thread.join()
