"""What is measured besides the load generator's own figures.

- Memory and CPU of the processes, from /proc: every process's peak RSS during each leg (the
  kernel's high-water mark, reset before the leg, and 20 ms samples of the process that serves
  it), and the CPU that process used.
- Round trips, counted by the backends themselves: nginx logs every request that carries
  X-Bench-Trace and counts all requests, so each request through s3-multi shows how many
  requests reached each backend.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.benchmark.backends import PUT_OK, NginxBackend, NginxPair
from tests.benchmark.http1 import one_request, sign, tampered
from tests.benchmark.load import Load, LoadResult
from tests.benchmark.services import Endpoint, Service

# --- /proc -------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx serves from a worker process)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(p) for p in (task / "children").read_text().split()]
    return pids


def _status_kb(pid: int, field_name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def rss_kb(pids: Sequence[int]) -> int:
    return sum(_status_kb(pid, "VmRSS") for pid in pids)


def peak_rss_kb(pids: Sequence[int]) -> int:
    return sum(_status_kb(pid, "VmHWM") for pid in pids)


def reset_peak_rss(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


# --- one leg -----------------------------------------------------------------------------------


@dataclass
class Measured:
    result: LoadResult
    front: str  # the service that served the leg
    peak_rss_mb: dict[str, float]  # by service name, every service watched
    cpu_seconds: float | None  # the front's
    largest_process_mb: float | None = None  # the front's largest process (a worker, say)
    cpu_by_service: dict[str, float] = field(default_factory=dict)  # every service watched

    @property
    def front_peak_rss_mb(self) -> float | None:
        return self.peak_rss_mb.get(self.front)

    @property
    def cpu_us_per_op(self) -> float | None:
        if self.cpu_seconds is None or not self.result.counted:
            return None
        return self.cpu_seconds / self.result.counted * 1e6


def combined(parts: Sequence[Measured]) -> Measured:
    """Legs measured one after the other as one: counts, times and CPU added up, peaks the
    largest."""
    first = parts[0]
    result = LoadResult()
    peaks: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for part in parts:
        r = part.result
        result.counted, result.seconds = result.counted + r.counted, result.seconds + r.seconds
        result.nbytes += r.nbytes
        result.errors = [*result.errors, *r.errors][:3]
        result.error_count += r.error_count
        for name, mb in part.peak_rss_mb.items():
            peaks[name] = max(peaks.get(name, 0.0), mb)
        for name, seconds in part.cpu_by_service.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    largest = max((p.largest_process_mb or 0.0 for p in parts), default=0.0) or None
    return replace(
        first,
        result=result,
        peak_rss_mb=peaks,
        cpu_seconds=cpu.get(first.front),
        largest_process_mb=largest,
        cpu_by_service=cpu,
    )


Samples = dict[tuple[str, str, str], list[Measured]]  # (setup, leg, way) -> one per run


class Measurer:
    def __init__(self) -> None:
        self.services: list[Service] = []  # every process the benchmark started

    def watch(self, service: Service) -> None:
        self.services.append(service)

    def run(self, start: Callable[[], Load], front: Service, timeout: float) -> Measured:
        """Start a load and wait for it, measuring every service; `front` (watched) serves it."""
        trees = {s.name: process_tree(s.pid) for s in self.services}
        reset = {name: all(reset_peak_rss(pid) for pid in pids) for name, pids in trees.items()}
        front_pids = trees[front.name]
        cpu_before = {name: cpu_seconds(pids) for name, pids in trees.items()}
        load = start()
        sampled = 0
        deadline = time.monotonic() + timeout
        try:
            while not load.wait(0.02):
                sampled = max(sampled, rss_kb(front_pids))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the load generator did not finish in {timeout:.0f}s")
        finally:
            load.close()
        result = load.result()
        cpu = {name: cpu_seconds(pids) - cpu_before[name] for name, pids in trees.items()}
        largest = max(_status_kb(pid, "VmHWM") for pid in front_pids) if reset[front.name] else 0
        peaks = {}
        for service in self.services:
            kb = peak_rss_kb(trees[service.name]) if reset[service.name] else 0
            if service is front:
                kb = max(kb, sampled)
            if kb:
                peaks[service.name] = kb * 1024 / 1e6
        if front.process.poll() is not None:
            result.fail(f"{front.name} exited with {front.process.returncode}")
        largest_mb = largest * 1024 / 1e6 or None
        return Measured(result, front.name, peaks, cpu[front.name], largest_mb, cpu)


# --- backend round trips -----------------------------------------------------------------------


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
    def answered_right(self) -> bool:
        return self.status in self.case.statuses and self.body_ok

    @property
    def ok(self) -> bool:
        return (
            self.answered_right
            and self.counted == self.case.expected
            and self.total == sum(self.case.expected)
        )


def trip_cases(hit_key: str, hit: bytes, fallback_key: str, fallback: bytes) -> list[TripCase]:
    ok = frozenset({200})
    return [
        TripCase("GET, on the primary", "GET", hit_key, ok, (1, 0), hit.__eq__),
        TripCase("GET, secondary only", "GET", fallback_key, ok, (1, 1), fallback.__eq__),
        TripCase("HEAD, secondary only", "HEAD", fallback_key, ok, (1, 1)),
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
            hit_key,
            frozenset({403}),
            (0, 0),
            lambda body: b"<Code>SignatureDoesNotMatch</Code>" in body,
            wrong_signature=True,
        ),
    ]


def _traced(backend: NginxBackend, label: str) -> int:
    if not backend.trace_log.exists():
        return 0
    lines = backend.trace_log.read_text().splitlines()
    return sum(1 for line in lines if line.split(" ", 1)[0] == label)


def round_trip(nginx: NginxPair, proxy: Endpoint, case: TripCase, label: str) -> Trip:
    trace = (("X-Bench-Trace", label),)
    body = os.urandom(1024) if case.method == "PUT" else b""
    request = sign(proxy.keys, case.method, proxy.port, case.key, body=body, extra=trace)
    if case.wrong_signature:
        request = tampered(request)
    before = nginx.requests_served()
    status, _, answer = one_request(proxy.port, request)
    time.sleep(0.05)  # nginx logs after it has answered
    total = nginx.requests_served() - before - 1  # less the second status request
    primary, secondary = nginx.backends
    counted = (_traced(primary, label), _traced(secondary, label))
    body_ok = case.body_check is None or case.body_check(answer)
    return Trip(case, status, counted, total, body_ok)


def round_trips(nginx: NginxPair, proxy: Endpoint, cases: list[TripCase]) -> list[Trip]:
    return [round_trip(nginx, proxy, case, f"trip{i}") for i, case in enumerate(cases)]
