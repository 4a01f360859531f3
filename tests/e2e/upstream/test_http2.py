"""HTTP/2 clients (mitmproxy speaks it to TLS clients that offer it): a refused upload resets its
own stream; the connection and its other streams go on."""

from __future__ import annotations

import socket
import ssl

import h2.config
import h2.connection
import h2.events
import pytest

from tests.support.direct import put_direct
from tests.support.raw_http import Request
from tests.support.root_keys import ROOT_SECRET
from tests.support.signing import sigv4

pytestmark = pytest.mark.e2e


class H2Client:
    """One HTTP/2 connection over TLS, driven by hand with the h2 library."""

    def __init__(self, port: int, ca_file: str) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.authority = f"127.0.0.1:{port}"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def start(self, method: str, path: str, body: bytes, secret: str, send: int) -> int:
        """A request signed by botocore for `body`; only its first `send` bytes are sent."""
        request = sigv4(
            Request(method, path, headers=(("Host", self.authority),), body=body), secret=secret
        )
        stream = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "https"), (":authority", self.authority)]
        headers += [(":path", path), ("content-length", str(len(body)))]
        headers += [(k.lower(), v) for k, v in request.headers if k.lower() != "host"]
        self.conn.send_headers(stream, headers, end_stream=not body)
        if body:
            self.conn.send_data(stream, body[:send], end_stream=send >= len(body))
        self.flush()
        return stream

    def until_done(self, stream: int) -> tuple[int, bytes, bool]:
        """Read until `stream` ends or is reset: its status, body, and whether it was reset."""
        status, body = 0, b""
        while True:
            data = self.sock.recv(65536)
            assert data, "the proxy closed the whole connection"
            for event in self.conn.receive_data(data):
                if getattr(event, "stream_id", None) != stream:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded):
                    self.flush()
                    return status, body, False
                elif isinstance(event, h2.events.StreamReset):
                    return status, body, True
            self.flush()


def test_a_refused_upload_resets_only_its_stream(proxy, backends, bucket):
    backends[0].client().create_bucket(Bucket=bucket)
    put_direct(backends[1], bucket, "after.txt", b"the connection still serves")
    client = H2Client(proxy.port, proxy.ca_file)
    try:
        body = b"u" * (4 * 1024 * 1024)
        refused = client.start("PUT", f"/{bucket}/up.bin", body, "wrong-secret", send=16384)
        status, answer, _ = client.until_done(refused)
        assert status == 403 and b"SignatureDoesNotMatch" in answer

        read = client.start("GET", f"/{bucket}/after.txt", b"", ROOT_SECRET, send=0)
        assert client.until_done(read) == (200, b"the connection still serves", False)
    finally:
        client.sock.close()
    assert "Contents" not in backends[0].client().list_objects_v2(Bucket=bucket)
