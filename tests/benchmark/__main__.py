"""Benchmark: s3-multi against plain mitmdump and against its backends directly.

    .venv/bin/python -m tests.benchmark [--quick] [--size-mib N ...] [--runs N]

Starts everything it needs on 127.0.0.1 and stops it at the end (also on Ctrl-C):

- one nginx (Debian's, with the dav module) serving two S3-like backends from two temp dirs:
  GET/HEAD serve /<bucket>/<key>, PUT stores it, a missing file is a 404 NoSuchKey in S3's XML;
  nginx ignores Authorization, so what is measured is the proxy's own cost;
- plain `mitmdump --mode reverse:<primary>` without addon, the framework's ceiling; it gets
  `stream_large_bodies=1m`, else it buffers large bodies whole and is no ceiling for them;
- s3-multi: `mitmdump -s addon/multi.py` on the two backends, run as tests/conftest.py runs it,
  with `-q` and `s3multi_debug=false`.

The load comes from a separate process (it still shares the machine's cores): 8 keep-alive
HTTP/1.1 connections replaying requests signed once with the root keys for small objects, one
connection for large ones. Each leg is run several times and every run measures all three ways
in turn, so a ratio compares numbers taken moments apart; the table shows medians. Every answer
is checked (status, length, and the bytes themselves where it matters).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import grp
import hashlib
import json
import multiprocessing
import os
import platform
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mitmproxy.version

from addon import sigv4
from addon.local_backends import free_port, wait_for_port
from tests.conftest import ROOT, ROOT_ACCESS, ROOT_SECRET, VENV_BIN, child_env, mitmdump_command

BUCKET = "bench"
REGION = "us-east-1"
CONNECTIONS = 8
SMALL = 1024
MIB = 1024 * 1024
BLOCK = MIB  # large bodies are written and read in blocks of this size
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
NOSUCHKEY_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
    "<Message>The specified key does not exist.</Message></Error>"
)
NGINX_INSTALL = "apt-get install -y nginx-light"
PUT_OK = frozenset({200, 201, 204})  # nginx's dav module: 201 Created, 204 when overwriting
DIRECT, PLAIN, PROXY = "direct", "plain", "proxy"

# Targets: s3-multi relative to plain mitmdump in the same run.
TARGET_GET_SMALL = 0.85
TARGET_GET_SMALL_FALLBACK = 0.7
TARGET_PUT_SMALL = 0.8
TARGET_LARGE = 0.9
TARGET_RSS_MB = 150.0
TARGET_RSS_SPREAD_MB = 25.0  # "flat across sizes": largest minus smallest peak


@dataclass(frozen=True)
class Settings:
    runs: int
    seconds: float  # measured window of a small leg
    warmup: float
    large_seconds: float  # a large leg repeats its transfer until this much time has passed
    sizes_mib: tuple[int, ...]


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one short run of every leg")
    parser.add_argument(
        "--size-mib",
        type=int,
        nargs="+",
        default=[64, 256, 1024],
        metavar="N",
        help="large object sizes in MiB (default: 64 256 1024)",
    )
    parser.add_argument("--runs", type=int, help="runs per leg (default 3, --quick 1)")
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.size_mib):
        parser.error("--size-mib takes sizes of at least 1")
    runs = args.runs or (1 if args.quick else 3)
    sizes = tuple(dict.fromkeys(args.size_mib))  # in order, once each
    if args.quick:
        return Settings(runs, 2.0, 0.5, 0.5, sizes)
    return Settings(runs, 5.0, 1.0, 2.0, sizes)


# --- the machine -------------------------------------------------------------------------------


def find_nginx() -> str:
    """nginx's path; exits 2 with the install command when it (or its dav module) is missing."""
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if path is None:
        print(f"nginx is missing; install it with:\n    {NGINX_INSTALL}", file=sys.stderr)
        sys.exit(2)
    built = subprocess.run([path, "-V"], capture_output=True, text=True).stderr
    missing = [m for m in ("http_dav_module", "http_stub_status_module") if m not in built]
    if missing:
        print(
            f"{path} lacks {', '.join(missing)}; Debian's nginx has them:\n    {NGINX_INSTALL}",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def machine_lines(nginx: str) -> list[str]:
    nginx_version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"nproc: {len(os.sched_getaffinity(0))}; CPU: {cpu_model()}",
        f"Python {platform.python_version()}; mitmproxy {mitmproxy.version.VERSION}; "
        f"{nginx_version.removeprefix('nginx version: ')}",
    ]


# --- child processes ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the benchmark dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    stop_signal: signal.Signals = signal.SIGINT

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_service(
    name: str,
    command: list[str],
    port: int,
    log_path: Path,
    stop_signal: signal.Signals = signal.SIGINT,
    env: dict[str, str] | None = None,
) -> Service:
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            preexec_fn=_die_with_parent,
        )
    service = Service(name, port, process, log_path, stop_signal)
    try:
        wait_for_port(port, process=process)
    except BaseException:
        service.stop()
        raise RuntimeError(f"{name} did not start:\n{service.log()}") from None
    return service


# --- nginx as two S3 backends ------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    port: int
    root: Path
    trace_log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def object_path(self, key: str) -> Path:
        return self.root / BUCKET / key


def _user_line() -> str:
    """Run as root, nginx's workers would switch to nobody, who cannot read our temp dirs."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def _server_block(backend: Backend) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{backend.port};
        root {backend.root};
        access_log {backend.trace_log} trace if=$http_x_bench_trace;
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


def nginx_config(workdir: Path, backends: list[Backend], status_port: int) -> str:
    temp = workdir / "nginx-temp"
    servers = "".join(_server_block(b) for b in backends)
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
    keepalive_requests 100000;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    # Only requests that carry X-Bench-Trace are logged: the round-trip leg counts them.
    log_format trace '$http_x_bench_trace $request_method $uri $status';
{servers}
    server {{
        listen 127.0.0.1:{status_port};
        location / {{ stub_status; }}
    }}
}}
"""


@dataclass
class Nginx:
    service: Service
    backends: list[Backend]
    status_port: int

    def requests_served(self) -> int:
        """nginx's request counter (all servers; this status request included)."""
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        _, _, text = one_request(self.status_port, request, "GET")
        return int(text.decode().splitlines()[2].split()[2])


def start_nginx(nginx: str, workdir: Path) -> Nginx:
    backends = []
    for name in ("primary", "secondary"):
        root = workdir / f"root-{name}"
        (root / BUCKET).mkdir(parents=True)
        backends.append(Backend(name, free_port(), root, workdir / f"trace-{name}.log"))
    status_port = free_port()
    (workdir / "nginx-temp").mkdir()
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, backends, status_port))
    command = [nginx, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "nginx-error.log")]
    service = start_service(
        "nginx", command, status_port, workdir / "nginx.out", stop_signal=signal.SIGTERM
    )
    for backend in backends:
        wait_for_port(backend.port, process=service.process)
    return Nginx(service, backends, status_port)


# --- the two mitmdumps -------------------------------------------------------------------------


def start_plain_mitmdump(workdir: Path, primary: Backend) -> Service:
    port = free_port()
    command = [
        str(VENV_BIN / "mitmdump"),
        "--mode",
        f"reverse:{primary.endpoint}",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "-q",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "keep_host_header=true",
        "--set",
        "stream_large_bodies=1m",
        "--set",
        f"confdir={workdir / 'mitmproxy'}",
    ]
    return start_service("plain mitmdump", command, port, workdir / "plain.log", env=child_env())


def quiet(command: list[str]) -> list[str]:
    """The command with `s3multi_debug=false` and `-q`.

    The setting is replaced, not added: mitmproxy rejects a script option given twice and then
    runs without the script, silently.
    """
    command = [c for c in command if c not in ("-q", "--quiet")]
    debug = [i for i, c in enumerate(command) if c.startswith("s3multi_debug=")]
    for i in debug:
        command[i] = "s3multi_debug=false"
    return [*command, *([] if debug else ["--set", "s3multi_debug=false"]), "-q"]


def start_s3multi(workdir: Path, backends: list[Backend]) -> Service:
    config = workdir / "s3multi.json"
    entries = [
        {
            "name": b.name,
            "access": f"AK{b.name.upper()}",
            "secret": f"{b.name}-secret",
            "endpoint": b.endpoint,
            "usePathStyle": True,
        }
        for b in backends
    ]
    config.write_text(json.dumps({"backends": entries}))
    port = free_port()
    command = quiet(mitmdump_command(config, port, workdir / "mitmproxy"))
    env = child_env(ROOT_ACCESS_KEY_ID=ROOT_ACCESS, ROOT_SECRET_ACCESS_KEY=ROOT_SECRET)
    return start_service("s3-multi", command, port, workdir / "s3multi.log", env=env)


# --- requests, signed once ---------------------------------------------------------------------


def build_request(
    method: str,
    port: int,
    key: str,
    *,
    payload_hash: str = EMPTY_SHA256,
    content_length: int | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The head of a request signed now with the root keys (valid for 15 minutes)."""
    host = f"127.0.0.1:{port}"
    path = f"/{BUCKET}/{key}"
    headers = [("Content-Type", "application/octet-stream")] if content_length is not None else []
    signed = sigv4.sign_headers(
        access=ROOT_ACCESS,
        secret=ROOT_SECRET,
        region=REGION,
        method=method,
        host=host,
        path=path,
        query="",
        headers=headers,
        signed_headers=[name.lower() for name, _ in headers],
        payload_hash=payload_hash,
    )
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in [*headers, *signed.items(), *extra]]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def small_put(port: int, key: str, body: bytes) -> bytes:
    head = build_request(
        "PUT",
        port,
        key,
        payload_hash=hashlib.sha256(body).hexdigest(),
        content_length=len(body),
    )
    return head + body


def tampered(request: bytes) -> bytes:
    """The same request with the last hex digit of its signature changed."""
    at = request.index(b"Signature=") + len(b"Signature=") + 63
    flipped = b"0" if request[at : at + 1] != b"0" else b"1"
    return request[:at] + flipped + request[at + 1 :]


# --- HTTP/1.1 parsing, shared by the load generator and the checks -----------------------------


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


def body_length(method: str, status: int, headers: dict[str, str]) -> int | None:
    """Bytes of body to read; None for a chunked body."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return None
    return int(headers.get("content-length", "0"))


class BlockingConnection:
    """One keep-alive connection with plain blocking sockets: fast enough for large bodies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buffer = bytearray(BLOCK)
        self.pending = b""

    def close(self) -> None:
        self.sock.close()

    def read_head(self) -> tuple[int, dict[str, str]]:
        data = bytearray(self.pending)
        while (end := data.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            data += chunk
        self.pending = bytes(data[end + 4 :])
        return parse_head(bytes(data[: end + 4]))

    def read_body(self, length: int, sink: Callable[[memoryview], Any] | None = None) -> int:
        """Read `length` bytes, handing each piece to `sink`; returns the count read."""
        got = min(len(self.pending), length)
        if sink and got:
            sink(memoryview(self.pending)[:got])
        self.pending = self.pending[got:]
        view = memoryview(self.buffer)
        while got < length:
            n = self.sock.recv_into(view, min(len(view), length - got))
            if n == 0:
                break
            if sink:
                sink(view[:n])
            got += n
        return got

    def exchange(self, request: bytes, method: str) -> tuple[int, dict[str, str], bytes]:
        """Send a whole request; the answer with its body (for small answers)."""
        self.sock.sendall(request)
        status, headers = self.read_head()
        length = body_length(method, status, headers)
        if length is None:
            raise ConnectionError("unexpected chunked answer")
        parts: list[bytes] = []
        self.read_body(length, lambda piece: parts.append(bytes(piece)))
        return status, headers, b"".join(parts)


def one_request(port: int, request: bytes, method: str) -> tuple[int, dict[str, str], bytes]:
    connection = BlockingConnection(port)
    try:
        return connection.exchange(request, method)
    finally:
        connection.close()


# --- the load generator (runs in its own process) ----------------------------------------------


@dataclass(frozen=True)
class SmallJob:
    """N connections, each replaying its request, counted in a window after a warm-up."""

    port: int
    requests: tuple[bytes, ...]  # one per connection
    method: str
    statuses: frozenset[int]
    body: bytes | None  # the exact body expected, or None to skip that check
    seconds: float
    warmup: float


@dataclass(frozen=True)
class GetJob:
    """One connection GETting one object again and again for at least `min_seconds`."""

    port: int
    request: bytes
    size: int
    min_seconds: float
    sha256: str | None = None  # also hash every body and compare


@dataclass(frozen=True)
class PutJob:
    """One connection PUTting `size` bytes (one block, repeated) for at least `min_seconds`."""

    port: int
    head: bytes
    block: bytes
    size: int
    min_seconds: float


Job = SmallJob | GetJob | PutJob


@dataclass
class LoadResult:
    counted: int = 0  # operations completed inside the measured window
    completed: int = 0  # all operations, warm-up included
    seconds: float = 0.0  # measured window (small) or time spent transferring (large)
    nbytes: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def fail(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < 3:
            self.errors.append(message)

    @property
    def per_second(self) -> float:
        return self.counted / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.nbytes / self.seconds / 1e6 if self.seconds else 0.0


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return b"".join(parts)


async def _small_connection(
    job: SmallJob, request: bytes, window: tuple[float, float], result: LoadResult
) -> None:
    start, end = window
    reader, writer = await asyncio.open_connection("127.0.0.1", job.port)
    try:
        while time.perf_counter() < end:
            writer.write(request)
            status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
            length = body_length(job.method, status, headers)
            body = await (_read_chunked(reader) if length is None else reader.readexactly(length))
            done = time.perf_counter()
            result.completed += 1
            if status not in job.statuses:
                result.fail(f"status {status}: {body[:200]!r}")
            elif job.body is not None and body != job.body:
                result.fail(f"wrong body ({len(body)} bytes)")
            if start <= done <= end:
                result.counted += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", job.port)
    finally:
        writer.close()


async def _run_small(job: SmallJob) -> LoadResult:
    result = LoadResult(seconds=job.seconds)
    start = time.perf_counter() + job.warmup
    window = (start, start + job.seconds)
    tasks = [_small_connection(job, request, window, result) for request in job.requests]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), job.warmup + job.seconds + 60
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            result.fail(f"connection failed: {outcome!r}")
    return result


def _run_get(job: GetJob) -> LoadResult:
    result = LoadResult()
    connection = BlockingConnection(job.port)
    try:
        while result.seconds < job.min_seconds or not result.completed:
            hasher = hashlib.sha256() if job.sha256 else None
            began = time.perf_counter()
            connection.sock.sendall(job.request)
            status, headers = connection.read_head()
            length = body_length("GET", status, headers)
            got = connection.read_body(length or 0, hasher.update if hasher else None)
            result.seconds += time.perf_counter() - began
            result.completed += 1
            result.counted += 1
            result.nbytes += got
            if status != 200 or length != job.size or got != job.size:
                result.fail(f"status {status}, {got} of {length} bytes, expected {job.size}")
                break
            if hasher and hasher.hexdigest() != job.sha256:
                result.fail("the body differs from the object (sha256)")
                break
    finally:
        connection.close()
    return result


def _run_put(job: PutJob) -> LoadResult:
    result = LoadResult()
    block = memoryview(job.block)
    connection = BlockingConnection(job.port)
    try:
        while result.seconds < job.min_seconds or not result.completed:
            began = time.perf_counter()
            connection.sock.sendall(job.head)
            for _ in range(job.size // len(block)):
                connection.sock.sendall(block)
            connection.sock.sendall(block[: job.size % len(block)])
            status, headers = connection.read_head()
            connection.read_body(body_length("PUT", status, headers) or 0)
            result.seconds += time.perf_counter() - began
            result.completed += 1
            result.counted += 1
            result.nbytes += job.size
            if status not in PUT_OK:
                result.fail(f"status {status}")
                break
    finally:
        connection.close()
    return result


def run_job(job: Job) -> LoadResult:
    """The load generator's entry point, called in the worker process."""
    try:
        if isinstance(job, SmallJob):
            return asyncio.run(_run_small(job))
        if isinstance(job, GetJob):
            return _run_get(job)
        return _run_put(job)
    except Exception as e:  # a dropped connection is a result to report, not a crash
        result = LoadResult()
        result.fail(f"{type(e).__name__}: {e}")
        return result


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us


# --- measuring: the job in the worker, memory and CPU of the server process here ---------------


def _proc_status_kb(pid: int, field_name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _reset_peak_rss(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Measured:
    result: LoadResult
    peak_rss_mb: float | None = None
    cpu_seconds: float | None = None

    @property
    def cpu_us_per_op(self) -> float | None:
        if self.cpu_seconds is None or not self.result.completed:
            return None
        return self.cpu_seconds / self.result.completed * 1e6


class Measurer:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def run(self, job: Job, watched: Service | None, timeout: float) -> Measured:
        """Run `job` in the load process; sample `watched`'s RSS every 20 ms meanwhile."""
        if watched is None:
            return Measured(self.pool.apply_async(run_job, (job,)).get(timeout))
        pid = watched.pid
        hwm_reset = _reset_peak_rss(pid)
        cpu_before = _cpu_seconds(pid)
        pending = self.pool.apply_async(run_job, (job,))
        peak_kb = 0
        deadline = time.monotonic() + timeout
        while not pending.ready():
            peak_kb = max(peak_kb, _proc_status_kb(pid, "VmRSS"))
            pending.wait(0.02)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the load generator did not finish in {timeout:.0f}s")
        result = pending.get()
        if hwm_reset:
            peak_kb = max(peak_kb, _proc_status_kb(pid, "VmHWM"))
        if watched.process.poll() is not None:
            result.fail(f"{watched.name} exited with {watched.process.returncode}")
        return Measured(result, peak_kb * 1024 / 1e6, _cpu_seconds(pid) - cpu_before)


# --- the legs ----------------------------------------------------------------------------------


@dataclass
class Bench:
    settings: Settings
    measurer: Measurer
    nginx: Nginx
    plain: Service
    proxy: Service
    # (leg, way) -> one Measured per run
    samples: dict[tuple[str, str], list[Measured]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    put_block: bytes = field(default_factory=lambda: os.urandom(BLOCK))
    addon_mtime: float = 0.0  # of addon/*.py when s3-multi started

    @property
    def primary(self) -> Backend:
        return self.nginx.backends[0]

    @property
    def secondary(self) -> Backend:
        return self.nginx.backends[1]

    def port(self, way: str) -> int:
        return {DIRECT: self.primary.port, PLAIN: self.plain.port, PROXY: self.proxy.port}[way]

    def watched(self, way: str) -> Service | None:
        return {DIRECT: None, PLAIN: self.plain, PROXY: self.proxy}[way]

    def record(self, leg: str, way: str, measured: Measured) -> None:
        self.samples.setdefault((leg, way), []).append(measured)
        for error in measured.result.errors:
            self.problem(f"{leg} via {way}: {error}")
        if measured.result.error_count > len(measured.result.errors):
            self.problem(f"{leg} via {way}: {measured.result.error_count} wrong answers in all")

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def addon_mtime() -> float:
    return max(p.stat().st_mtime for p in (ROOT / "addon").glob("*.py"))


def write_object(path: Path, size: int) -> str:
    """Random content of `size` bytes; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    with path.open("wb") as f:
        for offset in range(0, size, BLOCK):
            block = os.urandom(min(BLOCK, size - offset))
            hasher.update(block)
            f.write(block)
    return hasher.hexdigest()


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


def repeated_sha256(block: bytes, size: int) -> str:
    hasher = hashlib.sha256()
    for _ in range(size // len(block)):
        hasher.update(block)
    hasher.update(block[: size % len(block)])
    return hasher.hexdigest()


def small_legs_run(bench: Bench, hit: bytes, fallback: bytes) -> None:
    """One run of legs 1-3: small GET (hit, fallback) and small PUT, every way in turn."""
    s = bench.settings
    timeout = s.warmup + s.seconds + 120

    def get(leg: str, way: str, key: str, body: bytes) -> None:
        request = build_request("GET", bench.port(way), key)
        job = SmallJob(
            bench.port(way),
            (request,) * CONNECTIONS,
            "GET",
            frozenset({200}),
            body,
            s.seconds,
            s.warmup,
        )
        bench.record(leg, way, bench.measurer.run(job, bench.watched(way), timeout))

    def put(way: str) -> None:
        bodies = [os.urandom(SMALL) for _ in range(CONNECTIONS)]
        requests = tuple(
            small_put(bench.port(way), f"small-put-{way}-{i}", body)
            for i, body in enumerate(bodies)
        )
        job = SmallJob(bench.port(way), requests, "PUT", PUT_OK, None, s.seconds, s.warmup)
        bench.record("put-small", way, bench.measurer.run(job, bench.watched(way), timeout))
        for i, body in enumerate(bodies):
            check_stored(bench, f"small-put-{way}-{i}", lambda p, b=body: p.read_bytes() == b)

    for way in (DIRECT, PLAIN, PROXY):
        get("get-small", way, "small-hit", hit)
    get("get-small-fallback", PROXY, "small-fallback", fallback)
    for way in (DIRECT, PLAIN, PROXY):
        put(way)


def check_stored(bench: Bench, key: str, matches: Callable[[Path], bool]) -> None:
    """A PUT must land on the primary only, with the bytes sent."""
    on_primary = bench.primary.object_path(key)
    if not on_primary.exists() or not matches(on_primary):
        bench.problem(f"PUT {key}: the primary does not hold the bytes sent")
    if bench.secondary.object_path(key).exists():
        bench.problem(f"PUT {key}: written to the secondary")


def large_legs(bench: Bench, size_mib: int) -> None:
    """Every run of leg 4 for one size: create the objects, check, measure, remove them.

    The object is `large-N` on the primary and, the same bytes, `large-N-fb` on the secondary
    only; each way PUTs its own key on the primary.
    """
    s = bench.settings
    size = size_mib * MIB
    timeout = s.large_seconds + size / 20e6 + 120  # even at 20 MB/s
    hit = bench.primary.object_path(f"large-{size_mib}")
    fallback = bench.secondary.object_path(f"large-{size_mib}-fb")
    sha256 = write_object(hit, size)
    os.link(hit, fallback)

    def get(leg: str, way: str, key: str, min_seconds: float, digest: str | None = None) -> None:
        request = build_request("GET", bench.port(way), key)
        job = GetJob(bench.port(way), request, size, min_seconds, digest)
        measured = bench.measurer.run(job, bench.watched(way), timeout)
        if digest is None:
            bench.record(leg, way, measured)
            return
        for error in measured.result.errors:
            bench.problem(f"{leg} via {way}, bytes compared: {error}")

    def put(way: str, check: bool) -> None:
        key = f"put-{size_mib}-{way}"
        head = build_request(
            "PUT",
            bench.port(way),
            key,
            payload_hash=sigv4.UNSIGNED_PAYLOAD,
            content_length=size,
        )
        job = PutJob(bench.port(way), head, bench.put_block, size, s.large_seconds)
        bench.record(f"put-{size_mib}", way, bench.measurer.run(job, bench.watched(way), timeout))
        if check:
            expected = repeated_sha256(bench.put_block, size)
            check_stored(
                bench, key, lambda p: p.stat().st_size == size and file_sha256(p) == expected
            )
        bench.primary.object_path(key).unlink(missing_ok=True)

    try:
        # Untimed: the exact bytes through s3-multi, from either backend.
        get(f"get-{size_mib}", PROXY, f"large-{size_mib}", 0, sha256)
        get(f"get-{size_mib}-fallback", PROXY, f"large-{size_mib}-fb", 0, sha256)
        for run in range(s.runs):
            progress(f"large {size_mib} MiB, run {run + 1}/{s.runs}")
            for way in (DIRECT, PLAIN, PROXY):
                get(f"get-{size_mib}", way, f"large-{size_mib}", s.large_seconds)
            get(f"get-{size_mib}-fallback", PROXY, f"large-{size_mib}-fb", s.large_seconds)
            for way in (DIRECT, PLAIN, PROXY):
                put(way, check=way == PROXY and run == 0)
    finally:
        hit.unlink(missing_ok=True)
        fallback.unlink(missing_ok=True)


# --- leg 6: backend round trips per request ----------------------------------------------------


@dataclass(frozen=True)
class TripCase:
    name: str
    method: str
    key: str
    statuses: frozenset[int]
    expected: tuple[int, int]  # requests at the primary, at the secondary
    body_check: Callable[[bytes], bool] | None = None
    wrong_signature: bool = False


@dataclass
class Trip:
    case: TripCase
    status: int
    counted: tuple[int, int]
    total: int  # by nginx's own counter, requests with or without X-Bench-Trace
    body_ok: bool

    @property
    def ok(self) -> bool:
        return (
            self.status in self.case.statuses
            and self.counted == self.case.expected
            and self.total == sum(self.case.expected)
            and self.body_ok
        )


def trip_cases(hit: bytes, fallback: bytes) -> list[TripCase]:
    ok = frozenset({200})
    return [
        TripCase("GET, on the primary", "GET", "small-hit", ok, (1, 0), hit.__eq__),
        TripCase("GET, secondary only", "GET", "small-fallback", ok, (1, 1), fallback.__eq__),
        TripCase("HEAD, secondary only", "HEAD", "small-fallback", ok, (1, 1)),
        TripCase(
            "GET, nowhere",
            "GET",
            "nowhere",
            frozenset({404}),
            (1, 1),
            lambda body: b"<Code>NoSuchKey</Code>" in body,
        ),
        TripCase("PUT", "PUT", "trip-put", PUT_OK, (1, 0)),
        TripCase(
            "GET, wrong signature",
            "GET",
            "small-hit",
            frozenset({403}),
            (0, 0),
            lambda body: b"<Code>SignatureDoesNotMatch</Code>" in body,
            wrong_signature=True,
        ),
    ]


def _traced(backend: Backend, label: str) -> int:
    if not backend.trace_log.exists():
        return 0
    lines = backend.trace_log.read_text().splitlines()
    return sum(1 for line in lines if line.split(" ", 1)[0] == label)


def round_trip(bench: Bench, case: TripCase, label: str) -> Trip:
    port = bench.port(PROXY)
    trace = (("X-Bench-Trace", label),)
    if case.method == "PUT":
        body = os.urandom(SMALL)
        request = (
            build_request(
                "PUT",
                port,
                case.key,
                payload_hash=hashlib.sha256(body).hexdigest(),
                content_length=len(body),
                extra=trace,
            )
            + body
        )
    else:
        request = build_request(case.method, port, case.key, extra=trace)
    if case.wrong_signature:
        request = tampered(request)
    before = bench.nginx.requests_served()
    status, _, answer = one_request(port, request, case.method)
    time.sleep(0.05)  # nginx logs after it has answered
    total = bench.nginx.requests_served() - before - 1  # less the second status request
    counted = (_traced(bench.primary, label), _traced(bench.secondary, label))
    body_ok = case.body_check is None or case.body_check(answer)
    return Trip(case, status, counted, total, body_ok)


def round_trips(bench: Bench, hit: bytes, fallback: bytes) -> list[Trip]:
    trips = [round_trip(bench, c, f"trip{i}") for i, c in enumerate(trip_cases(hit, fallback))]
    for trip in trips:
        if trip.status not in trip.case.statuses or not trip.body_ok:
            bench.problem(f"round trips, {trip.case.name}: status {trip.status}, wrong answer")
    return trips


# --- the report --------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    direct: float | None
    plain: float | None
    proxy: float | None
    vs_plain: float | None  # median over runs of s3-multi / plain of the same run
    vs_direct: float | None
    rss_proxy: float | None
    rss_plain: float | None


def _metric(leg: str) -> Callable[[Measured], float]:
    if leg.startswith(("get-small", "put-small")):
        return lambda m: m.result.per_second
    return lambda m: m.result.mb_per_second


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(bench: Bench, leg: str, reference_leg: str, way: str) -> float | None:
    metric = _metric(leg)
    ours = bench.samples.get((leg, PROXY), [])
    theirs = bench.samples.get((reference_leg, way), [])
    ratios = [metric(a) / metric(b) for a, b in zip(ours, theirs, strict=False) if metric(b)]
    return _median(ratios)


def _peak(bench: Bench, leg: str, way: str) -> float | None:
    peaks = [m.peak_rss_mb for m in bench.samples.get((leg, way), []) if m.peak_rss_mb]
    return max(peaks) if peaks else None


def make_row(bench: Bench, leg: str, label: str, reference_leg: str | None = None) -> Row:
    """`reference_leg`: for a fallback leg, the primary-hit leg its ratios are taken against."""
    metric = _metric(leg)

    def value(way: str) -> float | None:
        return _median([metric(m) for m in bench.samples.get((leg, way), [])])

    reference = reference_leg or leg
    return Row(
        label,
        value(DIRECT),
        value(PLAIN),
        value(PROXY),
        _ratio(bench, leg, reference, PLAIN),
        _ratio(bench, leg, reference, DIRECT),
        _peak(bench, leg, PROXY),
        _peak(bench, leg, PLAIN),
    )


def rows(bench: Bench) -> list[Row]:
    result = [
        make_row(bench, "get-small", "GET 1 KiB, primary hit (req/s)"),
        make_row(bench, "get-small-fallback", "GET 1 KiB, fallback hit (req/s) *", "get-small"),
        make_row(bench, "put-small", "PUT 1 KiB (req/s)"),
    ]
    for n in bench.settings.sizes_mib:
        result += [
            make_row(bench, f"get-{n}", f"GET {n} MiB (MB/s)"),
            make_row(bench, f"get-{n}-fallback", f"GET {n} MiB, fallback hit (MB/s) *", f"get-{n}"),
            make_row(bench, f"put-{n}", f"PUT {n} MiB (MB/s)"),
        ]
    return result


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def main_table(table: list[Row]) -> str:
    header = [
        "leg",
        "direct",
        "plain mitmdump",
        "s3-multi",
        "s3-multi / plain",
        "s3-multi / direct",
        "peak RSS s3-multi (MB)",
        "peak RSS plain (MB)",
    ]
    body = [
        [
            r.label,
            _num(r.direct),
            _num(r.plain),
            _num(r.proxy),
            _num(r.vs_plain, 2),
            _num(r.vs_direct, 2),
            _num(r.rss_proxy),
            _num(r.rss_plain),
        ]
        for r in table
    ]
    return markdown(header, body)


def trips_table(trips: list[Trip]) -> str:
    header = [
        "request via s3-multi",
        "status",
        "at primary",
        "at secondary",
        "all nginx",
        "expected",
    ]
    body = [
        [
            t.case.name,
            str(t.status),
            str(t.counted[0]),
            str(t.counted[1]),
            str(t.total),
            f"{t.case.expected[0]} + {t.case.expected[1]} {'✓' if t.ok else '✗'}",
        ]
        for t in trips
    ]
    return markdown(header, body)


def targets(bench: Bench, table: list[Row], trips: list[Trip]) -> list[str]:
    by_label = {r.label: r for r in table}
    checks: list[tuple[str, float | None, float, bool]] = []  # what, value, bound, at least

    def ratio(label: str, bound: float) -> None:
        row = by_label[label]
        checks.append((f"{label.rsplit(' (', 1)[0]}: s3-multi / plain", row.vs_plain, bound, True))

    ratio("GET 1 KiB, primary hit (req/s)", TARGET_GET_SMALL)
    ratio("GET 1 KiB, fallback hit (req/s) *", TARGET_GET_SMALL_FALLBACK)
    ratio("PUT 1 KiB (req/s)", TARGET_PUT_SMALL)
    large = [r for r in table if "MiB" in r.label]
    for row in large:
        ratio(row.label, TARGET_LARGE)
    peaks = [r.rss_proxy for r in large if r.rss_proxy is not None]
    if peaks:
        checks.append(("peak RSS s3-multi, large legs (MB)", max(peaks), TARGET_RSS_MB, False))
        spread = max(peaks) - min(peaks)
        checks.append(
            ("peak RSS s3-multi, spread across sizes (MB)", spread, TARGET_RSS_SPREAD_MB, False)
        )
    lines = []
    for what, value, bound, at_least in checks:
        met = value is not None and (value >= bound if at_least else value <= bound)
        sign = ">=" if at_least else "<="
        lines.append(f"{'✓' if met else '✗'} {what}: {_num(value, 2)} (target {sign} {bound:g})")
    lines.append(f"{'✓' if all(t.ok for t in trips) else '✗'} backend round trips as expected")
    return lines


def cpu_lines(bench: Bench) -> list[str]:
    """CPU of each mitmdump per request, from /proc: robust where req/s is noisy."""
    lines = []
    for leg, label in (
        ("get-small", "GET 1 KiB, primary hit"),
        ("get-small-fallback", "GET 1 KiB, fallback hit"),
        ("put-small", "PUT 1 KiB"),
    ):
        cells = []
        for way, name in ((PROXY, "s3-multi"), (PLAIN, "plain")):
            samples = bench.samples.get((leg, way), [])
            us = _median([m.cpu_us_per_op for m in samples if m.cpu_us_per_op])
            span = bench.settings.warmup + bench.settings.seconds
            core = _median([m.cpu_seconds / span for m in samples if m.cpu_seconds])
            if us is not None and core is not None:
                cells.append(f"{name} {us:,.0f} us/request ({core:.0%} of a core)")
        if cells:
            lines.append(f"- CPU, {label}: " + "; ".join(cells))
    return lines


def report(bench: Bench, machine: list[str], trips: list[Trip]) -> str:
    s = bench.settings
    table = rows(bench)
    parts = [
        *machine,
        f"runs per leg: {s.runs} (median shown); small legs: {CONNECTIONS} keep-alive connections, "
        f"{s.seconds:g} s after {s.warmup:g} s warm-up; large legs: 1 connection, each transfer "
        f"repeated for at least {s.large_seconds:g} s; ratios are medians of per-run ratios; "
        "MB = 10^6 bytes",
        "",
        main_table(table),
        "",
        "\\* fallback hit: the object is on the secondary only (the primary answers 404 "
        "NoSuchKey first); its ratios are against the primary-hit figures of the same run.",
        "",
        trips_table(trips),
        "",
        *cpu_lines(bench),
        "",
        "targets:",
        *targets(bench, table, trips),
    ]
    if bench.problems:
        parts += ["", "PROBLEMS (the numbers above may not count):"]
        parts += [f"- {p}" for p in bench.problems]
    return "\n".join(parts)


# --- main --------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pick_tempdir(sizes_mib: tuple[int, ...]) -> str | None:
    """tmpfs when it has room (an object, a PUT's copy and nginx's temp file of the largest)."""
    shm = Path("/dev/shm")
    need = (4 * max(sizes_mib) + 512) * MIB
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
        return str(shm)
    return None


def smoke_check(bench: Bench, hit: bytes, fallback: bytes) -> None:
    """Each way answers a GET with the exact bytes before anything is timed."""
    checks = [(way, "small-hit", hit) for way in (DIRECT, PLAIN, PROXY)]
    checks.append((PROXY, "small-fallback", fallback))
    for way, key, expected in checks:
        port = bench.port(way)
        status, _, body = one_request(port, build_request("GET", port, key), "GET")
        if status != 200 or body != expected:
            service = bench.watched(way)
            log = service.log() if service else ""
            raise RuntimeError(f"GET {key} via {way}: status {status}, {body[:300]!r}\n{log}")


def _stop_pool(pool: Any) -> None:
    pool.terminate()
    pool.join()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through the ExitStack: every child is stopped


def start_all(settings: Settings, nginx_path: str, stack: contextlib.ExitStack) -> Bench:
    workdir = Path(
        stack.enter_context(
            tempfile.TemporaryDirectory(
                prefix="s3multi-bench-",
                dir=pick_tempdir(settings.sizes_mib),
                ignore_cleanup_errors=True,
            )
        )
    )
    progress(f"starting nginx, plain mitmdump and s3-multi in {workdir}")
    nginx = start_nginx(nginx_path, workdir)
    stack.callback(nginx.service.stop)
    plain = start_plain_mitmdump(workdir, nginx.backends[0])
    stack.callback(plain.stop)
    started = addon_mtime()
    proxy = start_s3multi(workdir, nginx.backends)
    stack.callback(proxy.stop)
    pool = multiprocessing.get_context("spawn").Pool(1, initializer=_worker_init)
    stack.callback(_stop_pool, pool)
    return Bench(settings, Measurer(pool), nginx, plain, proxy, addon_mtime=started)


def benchmark(bench: Bench) -> list[Trip]:
    hit, fallback = os.urandom(SMALL), os.urandom(SMALL)
    bench.primary.object_path("small-hit").write_bytes(hit)
    bench.secondary.object_path("small-fallback").write_bytes(fallback)
    smoke_check(bench, hit, fallback)
    for run_index in range(bench.settings.runs):
        progress(f"small legs, run {run_index + 1}/{bench.settings.runs}")
        small_legs_run(bench, hit, fallback)
    for size_mib in bench.settings.sizes_mib:
        large_legs(bench, size_mib)
    progress("round trips")
    trips = round_trips(bench, hit, fallback)
    if addon_mtime() > bench.addon_mtime:
        # mitmproxy reloads a -s script whose file changes, not the modules it imports.
        bench.problem("addon/*.py changed during the run: s3-multi may have reloaded mid-leg")
    return trips


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    nginx_path = find_nginx()
    machine = machine_lines(nginx_path)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as stack:
        bench = start_all(settings, nginx_path, stack)
        trips = benchmark(bench)
        text = report(bench, machine, trips)
    print(text)
    return 1 if bench.problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
