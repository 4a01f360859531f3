"""Load generators, each in a process of its own (they still share the machine's cores).

Small requests: wrk, replaying one signed request over keep-alive connections; a Lua script sets
method, path, headers and body, and prints wrk's own summary in a line we parse. wrk cannot
replay HEAD (its parser is not told the method and waits for the body the answer announces), so
HEAD legs are replayed the same way by an asyncio client. Large objects: a streaming client on
one connection, every answer's status and length checked (and, when asked, the bytes by hash).
The Python clients run in a worker process.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import multiprocessing
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.benchmark.backends import PUT_OK, repeated
from tests.benchmark.http1 import BlockingConnection, body_length, client_tls, parse_head, wire
from tests.benchmark.suite import Request

WRK_INSTALL = "apt-get install -y wrk"
REQUEST_TIMEOUT = 10.0  # seconds for an answer to a small request, before it counts as a timeout
WRK_RESULT = "wrk-result"
WRK_ERRORS = ("status", "connect", "read", "write", "timeout")  # "status": 400 or more
WRK_FIELDS = {  # what our `done` prints: name -> its value in wrk's Lua API
    "requests": "summary.requests",
    "duration_us": "summary.duration",
    "bytes": "summary.bytes",
    **{kind: f"summary.errors.{kind}" for kind in WRK_ERRORS},
    "p50_us": "latency:percentile(50)",
    "p99_us": "latency:percentile(99)",
}


@dataclass
class LoadResult:
    counted: int = 0  # operations completed
    seconds: float = 0.0  # the measured window (wrk) or the time spent transferring (large)
    nbytes: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def fail(self, message: str, count: int = 1) -> None:
        self.error_count += count
        if len(self.errors) < 3:
            self.errors.append(message)

    @property
    def per_second(self) -> float:
        return self.counted / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.nbytes / self.seconds / 1e6 if self.seconds else 0.0


class Load(Protocol):
    """A load generator at work."""

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; whether it has finished."""

    def result(self) -> LoadResult: ...

    def close(self) -> None:
        """Stop it if it still runs (after a timeout or an interruption)."""


# --- wrk ---------------------------------------------------------------------------------------


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit(f"wrk is missing; install it with:\n    {WRK_INSTALL}")
    return path


def lua_string(data: bytes) -> str:
    """A Lua string literal for any bytes."""
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def wrk_script(request: Request) -> str:
    """The Lua that makes wrk send `request` (wrk adds Content-Length from the body itself)."""
    lines = [f"wrk.method = {lua_string(request.method.encode())}"]
    lines.append(f"wrk.path = {lua_string(request.target.encode())}")
    for name, value in request.headers:
        if name.lower() != "content-length":
            lines.append(f"wrk.headers[{lua_string(name.encode())}] = {lua_string(value.encode())}")
    if request.body:
        lines.append(f"wrk.body = {lua_string(request.body)}")
    values = ", ".join(WRK_FIELDS.values())
    pattern = " ".join(f"{name}=%d" for name in WRK_FIELDS)
    lines += [
        "done = function(summary, latency, requests)",
        f'  io.write(string.format("{WRK_RESULT} {pattern}\\n", {values}))',
        "end",
    ]
    return "\n".join(lines) + "\n"


def parse_wrk(output: str) -> LoadResult:
    """wrk's stdout, as our script's `done` prints it, as a result; its errors as failures."""
    line = next((x for x in output.splitlines() if x.startswith(WRK_RESULT + " ")), None)
    if line is None:
        result = LoadResult()
        result.fail(f"wrk printed no result: {output[-500:]!r}")
        return result
    values = dict(item.split("=", 1) for item in line.split()[1:])
    n = {name: int(values[name]) for name in WRK_FIELDS}
    result = LoadResult(
        counted=n["requests"],
        seconds=n["duration_us"] / 1e6,
        nbytes=n["bytes"],
        p50_ms=n["p50_us"] / 1000,
        p99_ms=n["p99_us"] / 1000,
    )
    for kind in WRK_ERRORS:
        if n[kind]:
            what = "answers with status 400 or more" if kind == "status" else f"{kind} errors"
            result.fail(f"wrk: {n[kind]} {what}", n[kind])
    return result


class WrkLoad:
    def __init__(self, process: subprocess.Popen, output: Path) -> None:
        self.process = process
        self.output = output

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def result(self) -> LoadResult:
        result = parse_wrk(self.output.read_text(errors="replace"))
        if self.process.returncode:
            result.fail(f"wrk exited with {self.process.returncode}")
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_wrk(
    wrk: str,
    port: int,
    request: Request,
    seconds: int,
    connections: int,
    workdir: Path,
    tls: bool = False,
) -> WrkLoad:
    """wrk with one thread and `connections` keep-alive connections for `seconds` (HTTPS with
    `tls`: one handshake per connection, then every request encrypted)."""
    script = workdir / "wrk.lua"
    script.write_text(wrk_script(request))
    output = workdir / "wrk.out"
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += [
        "--timeout",
        f"{REQUEST_TIMEOUT:g}s",
        "-s",
        str(script),
        f"{'https' if tls else 'http'}://127.0.0.1:{port}/",
    ]
    with output.open("w") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    return WrkLoad(process, output)


# --- what wrk cannot replay: an asyncio client in the worker process ---------------------------


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile `p` (0 to 100) of `values`."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class ReplayJob:
    """`connections` keep-alive connections replaying `request` for `seconds`, as wrk does:
    what completes inside the window counts, an answer with status 400 or more is an error."""

    port: int
    request: Request
    connections: int
    seconds: float
    tls: bool = False


async def _exchange(job: ReplayJob, reader: asyncio.StreamReader) -> int:
    """The answer to the request just sent: its status, its body read and dropped."""
    status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
    length = body_length(job.request.method, status, headers)
    if length is None:
        raise ConnectionError("unexpected chunked answer")
    await reader.readexactly(length)
    return status


async def _replay(job: ReplayJob, end: float, latencies: list[float], result: LoadResult) -> None:
    data = wire(job.request)
    context = client_tls() if job.tls else None
    reader, writer = await asyncio.open_connection("127.0.0.1", job.port, ssl=context)
    try:
        while (began := time.perf_counter()) < end:
            writer.write(data)
            try:
                status = await asyncio.wait_for(_exchange(job, reader), REQUEST_TIMEOUT)
            except TimeoutError:
                result.fail(f"no answer in {REQUEST_TIMEOUT:g} s: the connection is dropped")
                return
            done = time.perf_counter()
            if done <= end:
                latencies.append(done - began)
            if status >= 400:
                result.fail(f"status {status}")
    finally:
        writer.close()


async def _run_replay(job: ReplayJob) -> LoadResult:
    result = LoadResult(seconds=job.seconds)
    latencies: list[float] = []
    end = time.perf_counter() + job.seconds
    tasks = [_replay(job, end, latencies, result) for _ in range(job.connections)]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), job.seconds + 60
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            result.fail(f"connection failed: {outcome!r}")
    result.counted = len(latencies)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    result.p50_ms = None if p50 is None else p50 * 1000
    result.p99_ms = None if p99 is None else p99 * 1000
    return result


# --- large objects: a streaming client in the worker process -----------------------------------


@dataclass(frozen=True)
class GetJob:
    """One connection GETting one object again and again for at least `min_seconds`."""

    port: int
    request: Request
    size: int
    min_seconds: float
    sha256: str | None = None  # also hash every body and compare
    tls: bool = False


@dataclass(frozen=True)
class PutJob:
    """One connection PUTting `size` bytes (one block, repeated) for at least `min_seconds`."""

    port: int
    head: Request
    block: bytes
    size: int
    min_seconds: float
    tls: bool = False


def _run_get(job: GetJob) -> LoadResult:
    result = LoadResult()
    connection = BlockingConnection(job.port, job.tls)
    try:
        while result.seconds < job.min_seconds or not result.counted:
            hasher = hashlib.sha256() if job.sha256 else None
            began = time.perf_counter()
            status, length, got = connection.get(job.request, hasher.update if hasher else None)
            result.seconds += time.perf_counter() - began
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
    connection = BlockingConnection(job.port, job.tls)
    try:
        while result.seconds < job.min_seconds or not result.counted:
            began = time.perf_counter()
            status = connection.put(job.head, repeated(job.block, job.size))
            result.seconds += time.perf_counter() - began
            result.counted += 1
            result.nbytes += job.size
            if status not in PUT_OK:
                result.fail(f"status {status}")
                break
    finally:
        connection.close()
    return result


Job = ReplayJob | GetJob | PutJob


def run_job(job: Job) -> LoadResult:
    """The worker's entry point."""
    try:
        if isinstance(job, ReplayJob):
            return asyncio.run(_run_replay(job))
        return _run_get(job) if isinstance(job, GetJob) else _run_put(job)
    except Exception as e:  # a dropped connection is a result to report, not a crash
        result = LoadResult()
        result.fail(f"{type(e).__name__}: {e}")
        return result


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us


class PoolLoad:
    def __init__(self, pending: Any) -> None:
        self.pending = pending

    def wait(self, timeout: float) -> bool:
        self.pending.wait(timeout)
        return self.pending.ready()

    def result(self) -> LoadResult:
        return self.pending.get()

    def close(self) -> None:
        """Nothing to do: a job cannot be stopped alone; `Worker.stop` ends the process."""


class Worker:
    """The process that runs the Python clients."""

    def __init__(self) -> None:
        self.pool = multiprocessing.get_context("spawn").Pool(1, initializer=_worker_init)

    def start(self, job: Job) -> PoolLoad:
        return PoolLoad(self.pool.apply_async(run_job, (job,)))

    def stop(self) -> None:
        self.pool.terminate()
        self.pool.join()
