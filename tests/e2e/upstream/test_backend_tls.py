"""HTTPS backends: sslSkipVerify applies to that backend's connections only."""

from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from addon.local.moto import start_moto_servers
from addon.local.servers import free_port
from tests.support.direct import put_direct
from tests.support.processes import VENV_BIN
from tests.support.proxy import proxy_env, start_proxy

pytestmark = pytest.mark.e2e


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for localhost and 127.0.0.1 that no CA vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s3-multi test backend")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture(scope="module")
def https_backend(tmp_path_factory):
    (server,) = start_moto_servers(["https-warm"], tls=self_signed(tmp_path_factory.mktemp("tls")))
    yield server
    server.stop()


def backend_entry(server, endpoint: str, skip_verify: bool) -> dict:
    return {
        "name": f"{server.name}-{'skip' if skip_verify else 'verify'}",
        "access": server.access,
        "secret": server.secret,
        "endpoint": endpoint,
        "usePathStyle": True,
        "sslSkipVerify": skip_verify,
    }


def test_skip_verify_is_per_backend(backends, https_backend, run_proxy, tmp_path, bucket):
    """One HTTPS server reached under two names: only the name that skips verification works."""
    primary = backends[0]
    primary.client().create_bucket(Bucket=bucket)
    put_direct(https_backend, bucket, "tls.txt", b"over https")
    port = https_backend.port
    config = tmp_path / "c.json"
    entries = [
        {"name": "primary", "access": primary.access, "secret": primary.secret},
        backend_entry(https_backend, f"https://localhost:{port}", skip_verify=False),
        backend_entry(https_backend, f"https://127.0.0.1:{port}", skip_verify=True),
    ]
    entries[0].update(endpoint=primary.endpoint, usePathStyle=True)
    config.write_text(json.dumps({"backends": entries}))
    proxy = run_proxy(config)

    assert proxy.client().get_object(Bucket=bucket, Key="tls.txt")["Body"].read() == b"over https"
    log = proxy.log()
    assert "https-warm-verify unreachable" in log  # the self-signed certificate was refused
    assert "answered by https-warm-skip" in log


def test_verification_failure_of_the_only_https_backend(https_backend, run_proxy, tmp_path):
    config = tmp_path / "c.json"
    entry = backend_entry(https_backend, https_backend.endpoint, skip_verify=False)
    config.write_text(json.dumps({"backends": [entry]}))
    proxy = run_proxy(config)

    with pytest.raises(ClientError) as got:
        proxy.client().list_objects_v2(Bucket="anything")
    assert got.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert "certificate" in proxy.log().lower()


def test_a_private_ca_is_trusted_without_skipping_verification(
    https_backend, run_proxy, tmp_path, bucket
):
    """The backend's CA given to mitmproxy: verified, and served, with sslSkipVerify false."""
    config = tmp_path / "c.json"
    entry = backend_entry(https_backend, https_backend.endpoint, skip_verify=False)
    config.write_text(json.dumps({"backends": [entry]}))
    proxy = run_proxy(config, f"ssl_verify_upstream_trusted_ca={https_backend.ca_file}")

    put_direct(https_backend, bucket, "private.txt", b"behind a private CA")
    assert proxy.client().get_object(Bucket=bucket, Key="private.txt")["Body"].read() == (
        b"behind a private CA"
    )


def test_skip_verify_works_under_the_s3_multi_command(https_backend, tmp_path, bucket):
    """The command adds the addon after mitmproxy's tlsconfig; `mitmdump -s` before it."""
    config = tmp_path / "c.json"
    entry = backend_entry(https_backend, https_backend.endpoint, skip_verify=True)
    config.write_text(json.dumps({"backends": [entry]}))
    port = free_port()
    command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--port", f"127.0.0.1:{port}"]
    proxy = start_proxy([*command, "--debug"], tmp_path, proxy_env(), port)
    try:
        put_direct(https_backend, bucket, "cmd.txt", b"self-signed, skipped")
        got = proxy.client().get_object(Bucket=bucket, Key="cmd.txt")["Body"].read()
    finally:
        proxy.stop()
    assert got == b"self-signed, skipped"
    assert f"GetObject /{bucket}/cmd.txt via [https-warm-skip 200" in proxy.log()
