"""The replication legs: PUTs through s3-multi (`mitmdump -s`) with a replica, beside the same
PUTs through s3-multi without one, on two SeaweedFS (the second is the fallback, or the
replica): a large PUT with a `sync` replica (the client hears once the replica has the object:
its body streamed to both at once, the tee) and 1 KiB PUTs (wrk, keep-alive connections) with
an `async` replica (the replica's PUT after the client heard).

Runs alternate the ways, so each ratio compares numbers taken moments apart; the ratio is the
median of per-run ratios. Untimed, after each leg: the object on the primary (and, for the sync
replica, on the replica at once) by hash; the async replica holding the last small body within
seconds. Whether the replicas got their objects by the tee or by a copy from the primary is read
from the proxy's metrics (`s3multi_replication_repairs_total`, `streamed` and `copied`).
"""

from __future__ import annotations

import json
import re
import statistics
import time
import urllib.request
from functools import partial
from pathlib import Path

from tests.benchmark.backends import WeedPair
from tests.benchmark.http1 import sign
from tests.benchmark.load import PutJob, Worker, start_wrk
from tests.benchmark.measurement import Measured, Measurer
from tests.benchmark.report import markdown, number, run_ratios
from tests.benchmark.runner import progress
from tests.benchmark.services import Endpoint, s3_multi_on
from tests.benchmark.settings import Settings

MIB = 1024 * 1024
UNREPLICATED, SYNC, ASYNC = "unreplicated", "sync replica", "async replica"
SYNC_TARGET, ASYNC_TARGET = 0.8, 0.9  # of the unreplicated PUT's throughput, at least
SETTLE = 60.0  # seconds for an async replica to catch up after a leg


def _config(pair: WeedPair, workdir: Path, mode: str) -> Path:
    primary, other = pair.backends
    entries = []
    for backend in (primary, other):
        entries.append(
            {
                "name": backend.name,
                "access": backend.keys.access,
                "secret": backend.keys.secret,
                "endpoint": backend.endpoint,
                "region": backend.keys.region,
                "usePathStyle": True,
            }
        )
    if mode:
        entries[0]["metaBucket"] = "s3multi-meta"
        entries[1]["replicate"] = mode
    path = workdir / f"replication-{mode or 'off'}.json"
    path.write_text(json.dumps({"backends": entries, "reconcileInterval": 0}))
    return path


def _repairs(endpoint: Endpoint) -> dict[str, float]:
    """The proxy's replication repairs so far, by action."""
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/-/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.findall(r's3multi_replication_repairs_total\{[^}]*action="(\w+)"[^}]*\} (\S+)', text)
    return {action: float(value) for action, value in found}


class ReplicationLegs:
    def __init__(self, pair: WeedPair, workdir: Path, settings: Settings, wrk: str) -> None:
        self.pair, self.workdir, self.settings, self.wrk = pair, workdir, settings, wrk
        self.measurer = Measurer()
        self.worker = Worker()
        self.block = bytes(range(256)) * 4096  # 1 MiB
        self.ways: dict[str, Endpoint] = {}
        self.large: dict[str, list[float]] = {UNREPLICATED: [], SYNC: []}
        self.small: dict[str, list[float]] = {UNREPLICATED: [], ASYNC: []}
        self.cpu: dict[str, list[float]] = {}
        self.problems: list[str] = []

    def start(self) -> None:
        for way, mode in ((UNREPLICATED, ""), (SYNC, "sync"), (ASYNC, "async")):
            config = _config(self.pair, self.workdir, mode)
            self.ways[way] = s3_multi_on(config, self.workdir, f"mitmdump -s, {way}")
            self.measurer.watch(self.ways[way].service)

    def stop(self) -> None:
        self.worker.stop()
        for endpoint in self.ways.values():
            endpoint.service.stop()

    def run(self) -> None:
        size = self.settings.sizes_mib[0] * MIB
        for run in range(self.settings.runs):
            progress(f"replication legs, run {run + 1}/{self.settings.runs}")
            for way in (UNREPLICATED, SYNC):
                self.large[way].append(self._large(way, size, f"put-{size // MIB}"))
            for way in (UNREPLICATED, ASYNC):
                self.small[way].append(self._small(way, "put-small"))

    def _large(self, way: str, size: int, key: str) -> float:
        endpoint = self.ways[way]
        head = sign(endpoint.keys, "PUT", endpoint.port, key, content_length=size)
        job = PutJob(endpoint.port, head, self.block, size, self.settings.large_seconds)
        measured = self._measure(
            f"{way}, large", partial(self.worker.start, job), size / 10e6 + 120
        )
        rate = measured.result.mb_per_second
        progress(f"  PUT {size // MIB} MiB via s3-multi, {way}: {rate:,.0f} MB/s")
        primary, replica = self.pair.backends
        stored = primary.sha256(key)
        if way == SYNC and replica.sha256(key) != stored:
            self.problems.append(f"PUT {key}, {way}: the replica does not hold the primary's bytes")
        for backend in self.pair.backends:
            backend.remove(key)
        self._gave_way(way)
        return rate

    def _gave_way(self, way: str) -> None:
        """Tees that gave way to a copy, as the proxy's log says (said as problems: the leg
        measured the copy, not the tee)."""
        for line in self.ways[way].service.log_path.read_text(errors="replace").splitlines():
            if "gave way" in line and line not in self.problems:
                self.problems.append(f"{way}: {line}")

    def _small(self, way: str, key: str) -> float:
        endpoint, s = self.ways[way], self.settings
        body = bytes(1024)
        request = sign(endpoint.keys, "PUT", endpoint.port, key, body=body)
        load = partial(
            start_wrk, self.wrk, endpoint.port, request, s.seconds, s.connections, self.workdir
        )
        measured = self._measure(f"{way}, 1 KiB", load, s.seconds + 60)
        rate = measured.result.per_second
        progress(f"  PUT 1 KiB via s3-multi, {way}: {rate:,.0f} req/s")
        if way == ASYNC:
            replica = self.pair.backends[1]
            deadline = time.monotonic() + SETTLE
            while replica.get(key) != body and time.monotonic() < deadline:
                time.sleep(0.2)
            if replica.get(key) != body:
                self.problems.append(f"PUT {key}, {way}: not on the replica {SETTLE:g}s after")
            time.sleep(2)  # the last repairs' tails, out of the next leg's measurement
            self._gave_way(way)
        return rate

    def _measure(self, leg: str, load, timeout: float) -> Measured:
        """`leg`: "<way>, <what>"."""
        endpoint = self.ways[leg.partition(",")[0]]
        measured = self.measurer.run(load, endpoint.service, timeout)
        for error in measured.result.errors:
            self.problems.append(f"{leg}: {error}")
        if measured.cpu_us_per_op is not None:
            self.cpu.setdefault(leg, []).append(measured.cpu_us_per_op)
        return measured

    def report(self) -> list[str]:
        size = self.settings.sizes_mib[0]
        sync = run_ratios(self.large[SYNC], self.large[UNREPLICATED]) or 0.0
        asyn = run_ratios(self.small[ASYNC], self.small[UNREPLICATED]) or 0.0
        rows = [
            [f"PUT {size} MiB (MB/s)", *_medians(self.large, UNREPLICATED, SYNC), f"{sync:.2f}"],
            ["PUT 1 KiB (req/s)", *_medians(self.small, UNREPLICATED, ASYNC), f"{asyn:.2f}"],
        ]
        header = ["leg", "unreplicated", "with the replica", "ratio"]
        lines = ["### Replication", "", markdown(header, rows), ""]
        cpu = ", ".join(f"{w} {number(statistics.median(v), 0)}" for w, v in self.cpu.items())
        lines.append(f"- the proxy's CPU per operation (µs, medians): {cpu}")
        for way in (SYNC, ASYNC):
            repairs = _repairs(self.ways[way])
            done = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(repairs.items())) or "none"
            lines.append(f"- repairs by the proxy with the {way}: {done}")
        lines += ["", "Targets (replication):", ""]
        for what, ratio, target in (
            (f"sync-replicated PUT {size} MiB / unreplicated", sync, SYNC_TARGET),
            ("1 KiB PUT with an async replica / unreplicated", asyn, ASYNC_TARGET),
        ):
            mark = "✓" if ratio >= target else "✗"
            lines.append(f"- {mark} {what}: {ratio:.2f} (target >= {target:g})")
        lines += [f"- problem: {p}" for p in self.problems]
        return lines


def _medians(figures: dict[str, list[float]], *ways: str) -> list[str]:
    return [number(statistics.median(figures[w]), 0) for w in ways]


def replication_legs(pair: WeedPair, workdir: Path, settings: Settings, wrk: str) -> list[str]:
    legs = ReplicationLegs(pair, workdir, settings, wrk)
    try:
        legs.start()
        legs.run()
        return legs.report()
    finally:
        legs.stop()
