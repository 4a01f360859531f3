"""Two s3-multi instances behind haproxy, as configs/haproxy.cfg sets it up (TLS ending at
haproxy, health checks on /-/ready): a mixed workload through the balancer lands every write on
the primary, deletes stick whichever instance is asked next, and an instance that stops is
taken out without a client error."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import certs

from addon.local.servers import free_port, wait_for_port
from tests.support import mixed_load
from tests.support.clients import s3_client
from tests.support.direct import has_object, put_direct
from tests.support.processes import REPO, VENV_BIN, child_env
from tests.support.proxy import Proxy, proxy_env, start_proxy, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
HAPROXY = shutil.which("haproxy")


@dataclass
class Balancer:
    port: int
    ca_file: str

    def client(self):
        return s3_client(f"https://127.0.0.1:{self.port}", verify=self.ca_file)


def certificate(workdir: Path) -> tuple[Path, str]:
    """haproxy's certificate and key for 127.0.0.1 (one PEM file), and the CA that signed it."""
    store = certs.CertStore.from_store(str(workdir / "ca"), "test-ca", 2048)
    entry = store.get_cert("127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    key = entry.privatekey.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pem = workdir / "haproxy.pem"
    pem.write_bytes(entry.cert.to_pem() + key)
    return pem, str(workdir / "ca" / "test-ca-ca-cert.pem")


def wait_for_line(path: Path, text: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"haproxy did not log {text!r}"
        time.sleep(0.2)


def instance(config: Path, workdir: Path) -> Proxy:
    port = free_port()
    command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--workers", "1"]
    command += ["--port", f"127.0.0.1:{port}", "--debug", "--drain-timeout", "10"]
    return start_proxy(command, workdir, {**proxy_env(), "HOME": str(workdir)}, port)


def test_two_instances_behind_haproxy(backends, tmp_path, bucket):
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    primary, secondary, _ = backends
    config = write_config(tmp_path / "c.json", backends, metaBucket=f"meta-{bucket}")
    first, second = instance(config, tmp_path), instance(config, tmp_path)
    pem, ca_file = certificate(tmp_path)
    port = free_port()
    env = child_env(
        S3_LISTEN=f"127.0.0.1:{port}",
        S3_CERT=str(pem),
        S3MULTI_1=f"127.0.0.1:{first.port}",
        S3MULTI_2=f"127.0.0.1:{second.port}",
    )
    log_path = tmp_path / "haproxy.log"
    with log_path.open("w") as log:
        haproxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(REPO / "configs" / "haproxy.cfg")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=haproxy)
        balancer = Balancer(port, ca_file)

        tally = mixed_load.run(balancer, backends, bucket, clients=16, seconds=8)
        assert tally.errors == []
        assert mixed_load.audit(backends, bucket, tally) == []
        assert all(tally.operations[op] > 0 for op in ("PUT", "DELETE", "LIST", "GET fallback"))
        for proxy in (first, second):  # both took part
            assert "PutObject" in proxy.log() and "GetObject" in proxy.log()

        # A delete through one instance sticks at the other: the tombstone is on the primary.
        put_direct(secondary, bucket, "shared", b"a fallback's copy")
        first.client().delete_object(Bucket=bucket, Key="shared")
        for client in (second.client(), balancer.client()):
            with pytest.raises(ClientError) as missing:
                client.get_object(Bucket=bucket, Key="shared")
            assert missing.value.response["Error"]["Code"] == "NoSuchKey"
        assert has_object(primary, f"meta-{bucket}", f"tombstones/{bucket}/shared")

        # An instance that stops (it drains) is left out: no client sees an error.
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(timeout=20) == 0
        put_direct(secondary, bucket, "after", b"still served")
        for _ in range(10):
            got = balancer.client().get_object(Bucket=bucket, Key="after")["Body"].read()
            assert got == b"still served"
        wait_for_line(log_path, "Server s3multi/s3multi-2 is DOWN")  # its health check failed
        assert "Server s3multi/s3multi-1 is DOWN" not in log_path.read_text()
    finally:
        haproxy.send_signal(signal.SIGTERM)
        haproxy.wait(timeout=10)
        for proxy in (first, second):
            proxy.stop()
    assert "ALERT" not in log_path.read_text()
