"""The local S3 servers the demo and the tests run (moto, SeaweedFS): each checks signatures with
keys of its own, several run side by side, and stopping one leaves nothing behind."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from addon import demo
from addon.local.seaweedfs import start_seaweed_servers
from addon.local.servers import free_port, s3_client
from tests.support.processes import VENV_BIN, child_env
from tests.support.proxy import start_proxy

pytestmark = pytest.mark.e2e


def refusal(endpoint: str, access: str, secret: str) -> str:
    with pytest.raises(ClientError) as got:
        s3_client(endpoint, access, secret).list_buckets()
    assert got.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return got.value.response["Error"]["Code"]


def listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("kind", ["moto", "seaweedfs"])
def test_each_server_refuses_requests_not_signed_with_its_own_keys(request, kind, bucket):
    first, second, _ = request.getfixturevalue(f"{kind}_servers")
    first.client().create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in first.client().list_buckets()["Buckets"]]

    assert refusal(second.endpoint, first.access, first.secret) == "InvalidAccessKeyId"
    assert refusal(first.endpoint, first.access, second.secret) == "SignatureDoesNotMatch"
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(f"{first.endpoint}/{bucket}", timeout=10)
    # moto in auth mode fails on an unsigned request (500, an HTML page): refused all the same.
    assert unsigned.value.code == (500 if kind == "moto" else 403)
    assert first.access != second.access and first.secret != second.secret


def test_seaweedfs_ports_are_its_own_and_stopping_removes_everything():
    (server,) = start_seaweed_servers(["alone"])
    try:
        grpc_ports = [port + 10_000 for port in server.ports.values()]
        assert all(listens(port) for port in [*server.ports.values(), *grpc_ports])
        assert max(grpc_ports) < 65536
        assert server.workdir.is_dir()
    finally:
        server.stop()
    assert not server.workdir.exists()
    assert not any(listens(port) for port in [*server.ports.values(), *grpc_ports])
    assert not [p for p in grpc_ports if list(Path("/tmp").glob(f"seaweedfs-*-grpc-{p}.sock"))]


def test_demo_on_seaweedfs_serves_the_object_only_the_third_backend_has(tmp_path):
    port = free_port()
    command = [str(VENV_BIN / "s3-multi-demo"), "--backend", "seaweedfs"]
    command += ["--port", f"127.0.0.1:{port}"]
    proxy = start_proxy(command, tmp_path, child_env(), port)
    try:
        client = s3_client(f"http://127.0.0.1:{port}", demo.ROOT_ACCESS, demo.ROOT_SECRET)
        got = client.get_object(Bucket=demo.BUCKET, Key="only-on-tertiary.txt")
        assert got["Body"].read() == b"hello from tertiary\n"
    finally:
        assert proxy.stop() == 0
    log = proxy.log()
    assert "starting three local S3 servers (seaweedfs)" in log
    assert "answered by tertiary" in log
    server_ports = [int(p) for p in re.findall(r"backend \d: \w+ at http://127.0.0.1:(\d+)", log)]
    assert len(server_ports) == 3
    assert not any(listens(p) for p in server_ports)  # the demo stopped its servers
