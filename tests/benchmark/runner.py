"""Running the legs: start every setup and way, place the objects, measure, check the answers."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tests.benchmark.backends import PUT_OK, NginxPair, Pair, Store, repeated_sha256
from tests.benchmark.http1 import BLOCK, one_request, sign
from tests.benchmark.legs import (
    ASYNCIO,
    COPIED_TRANSFERS,
    COPY_ON_READ,
    MIB,
    S3_MULTI,
    SETUPS,
    SMALL_LEGS,
    Leg,
    Setup,
    Way,
    large_legs,
)
from tests.benchmark.load import GetJob, PutJob, ReplayJob, Worker, start_wrk
from tests.benchmark.measurement import (
    Measured,
    Measurer,
    Samples,
    Trip,
    combined,
    round_trips,
    trip_cases,
)
from tests.benchmark.services import Endpoint, slug
from tests.benchmark.settings import Settings
from tests.benchmark.suite import ROOT, Request


@dataclass
class Deployment:
    """A setup running: its backends and an endpoint for each of its ways."""

    setup: Setup
    pair: Pair
    endpoints: dict[str, Endpoint]
    placed: dict[str, bytes] = field(default_factory=dict)  # by key; the content if small

    @property
    def primary(self) -> Store:
        return self.pair.backends[0]

    @property
    def secondary(self) -> Store:
        return self.pair.backends[1]

    @property
    def copies_to(self) -> Store:
        """The primary of the way that copies on read (on nginx: the fake that takes copies)."""
        return self.pair.copying[0]

    def ways(self, leg: Leg) -> list[Way]:
        if not self.setup.runs(leg):
            return []
        return [way for way in self.setup.ways if leg.runs_on(way)]


@dataclass
class Bench:
    settings: Settings
    workdir: Path
    wrk: str
    measurer: Measurer
    worker: Worker
    deployments: list[Deployment]
    block: bytes  # every large object is this block repeated
    addon_mtime: float  # of addon/*.py when the proxies started
    samples: Samples = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def record(self, deployment: Deployment, leg: Leg, way: Way, measured: Measured) -> None:
        where = f"{deployment.setup.name}, {leg.label} via {way.name}"
        self.samples.setdefault((deployment.setup.name, leg.name, way.name), []).append(measured)
        for error in measured.result.errors:
            self.problem(f"{where}: {error}")
        if measured.result.error_count > len(measured.result.errors):
            self.problem(f"{where}: {measured.result.error_count} failed requests in all")

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def addon_mtime() -> float:
    return max(p.stat().st_mtime for p in (ROOT / "addon").glob("*.py"))


def pick_tempdir(setup: Setup, sizes_mib: tuple[int, ...]) -> str | None:
    """tmpfs for a setup `in_memory` when it has room for its objects (each size on either
    backend, and a PUT's file with nginx's temporary copy of it); else the default."""
    shm = Path("/dev/shm")
    need = (2 * sum(sizes_mib) + 3 * max(sizes_mib) + 1024) * MIB  # and a copy, in parts
    if not setup.in_memory or not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    return str(shm) if shutil.disk_usage(shm).free > need else None


def all_legs(settings: Settings) -> list[Leg]:
    return [*SMALL_LEGS, *(leg for n in settings.sizes_mib for leg in large_legs(n))]


def start_all(settings: Settings, wrk: str, stack: contextlib.ExitStack) -> Bench:
    """Every setup with its objects in place, then its ways; `stack` stops each process, proxies
    before backends. The objects come first: rclone caches the listings it has read."""
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="s3multi-bench-")))
    measurer = Measurer()
    block = os.urandom(BLOCK)
    started = addon_mtime()
    deployments = []
    for setup in SETUPS:
        here = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(
                    prefix=f"s3multi-bench-{slug(setup.name)}-",
                    dir=pick_tempdir(setup, settings.sizes_mib),
                    ignore_cleanup_errors=True,
                )
            )
        )
        progress(f"starting {setup.name} in {here}, placing the objects")
        pair = setup.start(here)
        stack.callback(pair.stop)
        for service in pair.services:
            measurer.watch(service)
        deployment = Deployment(setup, pair, {})
        place_objects(deployment, all_legs(settings), block)
        progress(f"starting {', '.join(w.name for w in setup.ways)} for {setup.name}")
        for way in setup.ways:
            copying = way.solely == COPY_ON_READ
            endpoint = way.start(pair.copying if copying else pair.backends, here, setup.name)
            if endpoint.service not in pair.services:
                stack.callback(endpoint.service.stop)
                measurer.watch(endpoint.service)
            deployment.endpoints[way.name] = endpoint
        deployments.append(deployment)
    worker = Worker()
    stack.callback(worker.stop)
    return Bench(settings, workdir, wrk, measurer, worker, deployments, block, started)


def place_objects(deployment: Deployment, legs: Iterable[Leg], block: bytes) -> None:
    """The objects the legs read, on the backend each names (large ones: `block` repeated; a
    listing's keys on each backend in turn); both backends at once (SeaweedFS takes its time to
    store a large object)."""
    wanted: dict[str, tuple[Leg, int]] = {}  # key -> its leg and the backend that holds it
    for leg in legs:
        if leg.on is not None and deployment.setup.runs(leg):
            if leg.listed:
                wanted.update((key, (leg, n % 2)) for n, key in enumerate(listed_keys(leg)))
            else:
                wanted[leg.key] = (leg, leg.on)
    for key, (leg, _) in wanted.items():
        deployment.placed[key] = b"" if leg.large else os.urandom(leg.size)

    def place(index: int) -> None:
        backend = deployment.pair.backends[index]
        for key, (leg, on) in wanted.items():
            if on == index and leg.large:
                backend.put_large(key, block, leg.size)
            elif on == index:
                backend.put(key, deployment.placed[key])

    with ThreadPoolExecutor() as pool:
        list(pool.map(place, range(len(deployment.pair.backends))))


def listed_keys(leg: Leg) -> list[str]:
    return [f"{leg.key}/{n:04d}" for n in range(leg.listed)]


def check_answer(deployment: Deployment, leg: Leg, way: Way, request: Request) -> None:
    """One request of a small leg, before it is timed: the status and the bytes."""
    endpoint = deployment.endpoints[way.name]
    status, headers, body = one_request(endpoint.port, request, endpoint.tls)
    if leg.method == "PUT":
        right = status in PUT_OK
    elif leg.method == "HEAD":
        right = status == 200 and headers.get("content-length") == str(leg.size)
    elif leg.listed:
        listed = [key.decode() for key in re.findall(rb"<Key>([^<]*)</Key>", body)]
        right = status == 200 and listed == listed_keys(leg)
    else:
        right = status == 200 and body == deployment.placed[leg.key]
    if not right:
        where = f"{deployment.setup.name}: {leg.method} {leg.key_for(way)} via {way.name}"
        raise RuntimeError(f"{where}: status {status}, {body[:300]!r}\n{endpoint.service.log()}")


def check_stored(
    bench: Bench, deployment: Deployment, key: str, matches: Callable[[Store], bool]
) -> None:
    """A PUT must land on the primary only, with the bytes sent."""
    where = f"{deployment.setup.name}: PUT {key}"
    if not matches(deployment.primary):
        bench.problem(f"{where}: the primary does not hold the bytes sent")
    if deployment.secondary.size(key) is not None:
        bench.problem(f"{where}: written to the secondary")


def small_run(bench: Bench, first: bool) -> None:
    """One run of the small legs: each leg through every way in turn, on every setup."""
    s = bench.settings
    for deployment in bench.deployments:
        for leg in SMALL_LEGS:
            for way in deployment.ways(leg):
                endpoint = deployment.endpoints[way.name]
                key = leg.key_for(way)
                body = os.urandom(leg.size) if leg.method == "PUT" else b""
                if leg.listed:
                    request = sign(endpoint.keys, "GET", endpoint.port, query=leg.query)
                else:
                    request = sign(endpoint.keys, leg.method, endpoint.port, key, body=body)
                if first:
                    check_answer(deployment, leg, way, request)
                if leg.generator == ASYNCIO:
                    job = ReplayJob(endpoint.port, request, s.connections, s.seconds, endpoint.tls)
                    load = partial(bench.worker.start, job)
                else:
                    load = partial(
                        start_wrk,
                        bench.wrk,
                        endpoint.port,
                        request,
                        s.seconds,
                        s.connections,
                        bench.workdir,
                        endpoint.tls,
                    )
                measured = bench.measurer.run(load, endpoint.service, s.seconds + 60)
                bench.record(deployment, leg, way, measured)
                if leg.method == "PUT":
                    check_stored(bench, deployment, key, lambda b, k=key, v=body: b.get(k) == v)


def large_size(bench: Bench, size_mib: int) -> None:
    """Every run of the large legs of one size, after checking the bytes s3-multi serves."""
    s = bench.settings
    legs = large_legs(size_mib)
    digest = repeated_sha256(bench.block, legs[0].size)  # of every large object, placed or PUT
    timeout = s.large_seconds + legs[0].size / 10e6 + 120  # even at 10 MB/s
    for deployment in bench.deployments:
        for leg in legs:
            for way in deployment.ways(leg):
                if leg.method == "GET" and (way.ours or leg.copies):
                    verify_large_get(bench, deployment, leg, way, digest, timeout)
                if leg.copies:
                    check_copied(bench, deployment, leg, way, digest)
    for run in range(s.large_runs):
        progress(f"large {size_mib} MiB, run {run + 1}/{s.large_runs}")
        for deployment in bench.deployments:
            for leg in legs:
                for way in deployment.ways(leg):
                    large_leg(bench, deployment, leg, way, digest, timeout)


def verify_large_get(
    bench: Bench, deployment: Deployment, leg: Leg, way: Way, digest: str, timeout: float
) -> None:
    """Untimed: the exact bytes, by hash."""
    endpoint = deployment.endpoints[way.name]
    request = sign(endpoint.keys, "GET", endpoint.port, leg.key)
    job = GetJob(endpoint.port, request, leg.size, 0, digest, endpoint.tls)
    measured = bench.measurer.run(partial(bench.worker.start, job), endpoint.service, timeout)
    for error in measured.result.errors:
        bench.problem(f"{deployment.setup.name}, {leg.label} via {way.name}, by hash: {error}")


def large_leg(
    bench: Bench, deployment: Deployment, leg: Leg, way: Way, digest: str, timeout: float
) -> None:
    s = bench.settings
    endpoint = deployment.endpoints[way.name]
    key = leg.key_for(way)
    job: GetJob | PutJob
    if leg.method == "GET":
        request = sign(endpoint.keys, "GET", endpoint.port, key)
        # A copied leg's object is on the secondary alone for one transfer only.
        seconds = 0 if leg.copies else s.large_seconds
        job = GetJob(endpoint.port, request, leg.size, seconds, tls=endpoint.tls)
    else:
        head = sign(endpoint.keys, "PUT", endpoint.port, key, content_length=leg.size)
        job = PutJob(endpoint.port, head, bench.block, leg.size, s.large_seconds, endpoint.tls)
    transfers = []
    for _ in range(COPIED_TRANSFERS if leg.copies else 1):
        run = bench.measurer.run(partial(bench.worker.start, job), endpoint.service, timeout)
        transfers.append(run)
        if leg.copies:  # untimed: the copy lands, is checked and removed before the next
            check_copied(bench, deployment, leg, way, digest)
    measured = combined(transfers)
    bench.record(deployment, leg, way, measured)
    result = measured.result
    progress(
        f"  {deployment.setup.name}, {leg.label} via {way.name}: "
        f"{result.mb_per_second:,.0f} MB/s over {result.seconds:.1f} s"
    )
    if leg.method == "PUT":
        # The bytes themselves for ours; the size for the others, to save a read of each.
        if way.ours:
            check_stored(bench, deployment, key, lambda b: b.sha256(key) == digest)
        else:
            check_stored(bench, deployment, key, lambda b: b.size(key) == leg.size)
        deployment.primary.remove(key)


def check_copied(
    bench: Bench, deployment: Deployment, leg: Leg, way: Way, digest: str, seconds: float = 120
) -> None:
    """A read copied on read left the object on the primary, its bytes by hash; the copy is
    removed, so that the next read is a fallback hit again."""
    where = f"{deployment.setup.name}, {leg.label} via {way.name}"
    deadline = time.monotonic() + seconds
    primary = deployment.copies_to
    while primary.size(leg.key) != leg.size:
        if time.monotonic() > deadline:
            bench.problem(f"{where}: no copy on the primary {seconds:g} s after the read")
            return
        time.sleep(0.1)
    if primary.sha256(leg.key) != digest:
        bench.problem(f"{where}: the copy on the primary is not the object's bytes")
    primary.remove(leg.key)


def count_round_trips(bench: Bench) -> list[Trip]:
    """Through s3-multi on nginx, which counts what reaches each backend."""
    deployment = next(d for d in bench.deployments if isinstance(d.pair, NginxPair))
    nginx = deployment.pair
    assert isinstance(nginx, NginxPair)  # for the type checker: next() does not narrow
    hit, fallback = (leg for leg in SMALL_LEGS if leg.name in ("get", "get-fallback"))
    objects = deployment.placed
    cases = trip_cases(hit.key, objects[hit.key], fallback.key, objects[fallback.key])
    trips = round_trips(nginx, deployment.endpoints[S3_MULTI.name], cases)
    for trip in trips:
        if not trip.answered_right:
            bench.problem(f"round trips, {trip.case.name}: status {trip.status}, wrong answer")
    return trips


def benchmark(bench: Bench) -> list[Trip]:
    for run in range(bench.settings.runs):
        progress(f"small legs, run {run + 1}/{bench.settings.runs}")
        small_run(bench, first=run == 0)
    for size_mib in bench.settings.sizes_mib:
        large_size(bench, size_mib)
    progress("round trips")
    trips = count_round_trips(bench)
    if addon_mtime() > bench.addon_mtime:
        # mitmproxy reloads a -s script whose file changes, not the modules it imports.
        bench.problem("addon/*.py changed during the run: s3-multi may have reloaded mid-leg")
    return trips
