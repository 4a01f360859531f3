"""The report: medians and same-run ratios, as the Markdown tables of tests/benchmark/README.md."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence

from tests.benchmark.legs import (
    ASYNCIO,
    COPIED_TRANSFERS,
    MIB,
    ONE_WORKER,
    PLAIN,
    S3_MULTI,
    S3_MULTI_WORKERS,
    Leg,
    Setup,
    Way,
)
from tests.benchmark.measurement import Measured, Samples, Trip
from tests.benchmark.settings import Settings

# Targets: s3-multi relative to plain mitmdump in the same run, on nginx (where only the proxy's
# own cost shows).
TARGETS = {"get": 0.85, "get-fallback": 0.7, "put": 0.8}
TARGET_LARGE = 0.9
TARGET_RSS_MB = 150.0
TARGET_RSS_SPREAD_MB = 25.0  # "flat across sizes": largest minus smallest peak
# The s3-multi command in one process: its CPU per request at most plain mitmdump's (no
# addon), on nginx, by leg.
CPU_TARGETS = {"get": 1.0}
# s3-multi's workers relative to the peer (rclone union) in the same run, on SeaweedFS.
PEER_TARGETS = {"get": 1.0, "get-fallback": 0.8, "put": 1.0}
PEER_TARGET_LARGE = 1.3
# The CPU of a merged listing page (µs per request, the workers' together), at most.
TARGET_LISTING_CPU_US = 1500.0

NOTES = (
    "\\* fallback hit: the object is on the secondary only (the primary answers 404 first); "
    "a way without fallback is compared on its primary-hit figures of the same run.",
    "† replayed by an asyncio client with the same connections, not wrk: wrk cannot replay HEAD "
    "(its parser waits for the body a HEAD answer announces).",
    "copied on read: through `mitmdump -s` with `migrate: on-read` on the fallback; "
    f"{COPIED_TRANSFERS} transfers per run, each copied (the copy is checked by hash on the "
    "primary and removed, for the next to be a fallback hit again), compared with `mitmdump -s`'s "
    "fallback hit without copy of the same run. On nginx its primary is the fake that takes "
    "copies (tests/benchmark/fake_primary.py).",
    "HTTPS: the client speaks HTTPS to the way (mitmproxy or rclone terminates it) and the way "
    "to SeaweedFS's HTTPS port (a self-signed certificate, not verified by either).",
)
FAILED_NOTE = "! some requests of the leg failed (wrong status, no answer in 10 s): see PROBLEMS."


def median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def run_ratios(ours: Sequence[float], theirs: Sequence[float]) -> float | None:
    """The median over runs of ours / theirs, each pair taken in the same run."""
    return median(a / b for a, b in zip(ours, theirs, strict=False) if b)


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def metric(leg: Leg) -> Callable[[Measured], float]:
    if leg.large:
        return lambda m: m.result.mb_per_second
    return lambda m: m.result.per_second


class Figures:
    """The samples of a run, looked up by setup, leg and way."""

    def __init__(self, samples: Samples, legs: Sequence[Leg]) -> None:
        self.samples = samples
        self.legs = {leg.name: leg for leg in legs}

    def runs(self, setup: Setup, leg: Leg, way: Way) -> list[Measured]:
        return self.samples.get((setup.name, leg.name, way.name), [])

    def value(self, setup: Setup, leg: Leg, way: Way) -> float | None:
        return median(map(metric(leg), self.runs(setup, leg, way)))

    def failed(self, setup: Setup, leg: Leg, way: Way) -> bool:
        """Whether some request of this leg failed (wrong status, timeout, dropped)."""
        return any(m.result.error_count for m in self.runs(setup, leg, way))

    def cell(self, setup: Setup, leg: Leg, way: Way) -> str:
        """The median, marked when some request failed."""
        mark = " !" if self.failed(setup, leg, way) else ""
        return number(self.value(setup, leg, way)) + mark

    def cpu_ratio(self, setup: Setup, leg: Leg, ours: Way, other: Way) -> float | None:
        """Ours / other in CPU per request on this leg, medians of per-run ratios."""
        mine, theirs = self.runs(setup, leg, ours), self.runs(setup, leg, other)
        pairs = zip(mine, theirs, strict=False)
        return median(
            a.cpu_us_per_op / b.cpu_us_per_op
            for a, b in pairs
            if a.cpu_us_per_op is not None and b.cpu_us_per_op
        )

    def cpu_us(self, setup: Setup, leg: Leg, way: Way) -> float | None:
        return median(
            m.cpu_us_per_op for m in self.runs(setup, leg, way) if m.cpu_us_per_op is not None
        )

    def ratio(self, setup: Setup, leg: Leg, ours: Way, other: Way) -> float | None:
        """Ours / other on this leg, or on the stand-in leg for a way that cannot run it."""
        theirs = leg if leg.runs_on(other) else self.legs.get(leg.stand_in or "")
        if theirs is None:
            return None
        return run_ratios(
            [metric(leg)(m) for m in self.runs(setup, leg, ours)],
            [metric(theirs)(m) for m in self.runs(setup, theirs, other)],
        )


def _shown(setup: Setup, legs: Sequence[Leg]) -> list[Way]:
    """A table's columns: the setup's ways, but those solely for some legs only with them."""
    return [w for w in setup.ways if w.solely is None or any(leg.runs_on(w) for leg in legs)]


def _label(leg: Leg) -> str:
    marks = (" *" if leg.stand_in else "") + (" †" if leg.generator == ASYNCIO else "")
    return f"{leg.label} ({leg.unit}){marks}"


def throughput_table(figures: Figures, setup: Setup, legs: Sequence[Leg]) -> str:
    ways = _shown(setup, legs)
    header = [
        "leg",
        *(w.name for w in ways),
        *(f"{a.name} / {b.name}" for a, b in setup.ratios),
    ]
    rows = [
        [
            _label(leg),
            *(figures.cell(setup, leg, way) for way in ways),
            *(number(figures.ratio(setup, leg, a, b), 2) for a, b in setup.ratios),
        ]
        for leg in legs
    ]
    return markdown(header, rows)


def latency_table(figures: Figures, setup: Setup, legs: Sequence[Leg]) -> str:
    """p50 / p99 in ms (medians over runs of wrk's percentiles)."""

    def cell(leg: Leg, way: Way) -> str:
        runs = figures.runs(setup, leg, way)
        p50 = median(m.result.p50_ms for m in runs if m.result.p50_ms is not None)
        p99 = median(m.result.p99_ms for m in runs if m.result.p99_ms is not None)
        return "-" if p50 is None else f"{number(p50, 1)} / {number(p99, 1)}"

    ways = _shown(setup, legs)
    rows = [[leg.label, *(cell(leg, way) for way in ways)] for leg in legs]
    return markdown(["leg: p50 / p99 (ms)", *(w.name for w in ways)], rows)


def cpu_table(figures: Figures, setup: Setup, legs: Sequence[Leg]) -> str:
    """CPU time per request of the process that serves it."""

    def cell(leg: Leg, way: Way) -> str:
        runs = figures.runs(setup, leg, way)
        us = median(m.cpu_us_per_op for m in runs if m.cpu_us_per_op is not None)
        return number(us)

    ways = _shown(setup, legs)
    rows = [[leg.label, *(cell(leg, way) for way in ways)] for leg in legs]
    return markdown(["leg: CPU per request (µs)", *(w.name for w in ways)], rows)


def rss_table(samples: Samples, legs: Sequence[Leg]) -> str:
    """Each process's peak RSS (MB) over the small legs and over each size's large legs."""
    by_name = {leg.name: leg for leg in legs}
    columns: list[str] = []
    peaks: dict[str, dict[str, float]] = {}  # process -> column -> MB
    for (_, leg_name, _), runs in samples.items():
        leg = by_name[leg_name]
        column = f"{leg.size // MIB} MiB legs" if leg.large else "small legs"
        if column not in columns:
            columns.append(column)
        for measured in runs:
            for process, mb in measured.peak_rss_mb.items():
                cells = peaks.setdefault(process, {})
                cells[column] = max(cells.get(column, 0.0), mb)
    rows = [[p, *(number(cells.get(c)) for c in columns)] for p, cells in peaks.items()]
    return markdown(["process: peak RSS (MB)", *columns], rows)


def trips_table(trips: list[Trip]) -> str:
    header = ["request via s3-multi", "status", "at primary", "at secondary", "all nginx"]
    rows = [
        [
            t.case.name,
            str(t.status),
            str(t.counted[0]),
            str(t.counted[1]),
            str(t.total),
        ]
        for t in trips
    ]
    for row, trip in zip(rows, trips, strict=True):
        row.append(f"{trip.case.expected[0]} + {trip.case.expected[1]} {'✓' if trip.ok else '✗'}")
    return markdown([*header, "expected"], rows)


Check = tuple[str, float | None, float, bool]  # what, value, bound, whether it is at least


def checked(checks: Sequence[Check]) -> list[str]:
    lines = []
    for what, value, bound, at_least in checks:
        met = value is not None and (value >= bound if at_least else value <= bound)
        sign = ">=" if at_least else "<="
        lines.append(f"{'✓' if met else '✗'} {what}: {number(value, 2)} (target {sign} {bound:g})")
    return lines


def ratio_checks(
    figures: Figures,
    setup: Setup,
    legs: Sequence[Leg],
    ours: Way,
    theirs: Way,
    large: float,
    small: dict[str, float],
) -> list[Check]:
    """ours / theirs on each leg with a target: `large` for every large leg, `small` by name."""
    checks: list[Check] = []
    for leg in legs:
        bound = large if leg.large else small.get(leg.name)
        if bound is not None:
            value = figures.ratio(setup, leg, ours, theirs)
            checks.append((f"{leg.label}: {ours.name} / {theirs.name}", value, bound, True))
    return checks


def peer_targets(figures: Figures, setup: Setup, peer: Way, legs: Sequence[Leg]) -> list[str]:
    """s3-multi's workers / the peer on small requests and large transfers; the CPU of a
    merged listing page; RSS per worker."""
    ours = S3_MULTI_WORKERS
    checks = ratio_checks(figures, setup, legs, ours, peer, PEER_TARGET_LARGE, PEER_TARGETS)
    for leg in legs:
        if leg.listed:
            what = f"{leg.label}: CPU per request, {ours.name} (µs)"
            checks.append((what, figures.cpu_us(setup, leg, ours), TARGET_LISTING_CPU_US, False))
    runs = [m for leg in legs for m in figures.runs(setup, leg, ours)]
    largest = max((m.largest_process_mb or 0.0 for m in runs), default=None)
    checks.append(
        (f"peak RSS of one worker, {ours.name}, every leg (MB)", largest, TARGET_RSS_MB, False)
    )
    return checked(checks)


def targets(figures: Figures, setup: Setup, legs: Sequence[Leg], trips: list[Trip]) -> list[str]:
    """The targets, checked on `setup` (nginx): s3-multi / plain mitmdump, memory, round trips."""
    ours = S3_MULTI
    checks = ratio_checks(figures, setup, legs, ours, PLAIN, TARGET_LARGE, TARGETS)
    for leg in legs:
        if leg.name in CPU_TARGETS:
            what = f"{leg.label}: CPU per request, {ONE_WORKER.name} / {PLAIN.name}"
            value = figures.cpu_ratio(setup, leg, ONE_WORKER, PLAIN)
            checks.append((what, value, CPU_TARGETS[leg.name], False))
    by_size: dict[int, float] = {}
    for leg in legs:
        if leg.large:
            for measured in figures.runs(setup, leg, ours):
                mb = measured.front_peak_rss_mb or 0.0
                by_size[leg.size] = max(by_size.get(leg.size, 0.0), mb)
    if by_size:
        peak, low = max(by_size.values()), min(by_size.values())
        checks.append((f"peak RSS {ours.name}, large legs (MB)", peak, TARGET_RSS_MB, False))
        spread = f"peak RSS {ours.name}, spread across sizes (MB)"
        checks.append((spread, peak - low, TARGET_RSS_SPREAD_MB, False))
    lines = checked(checks)
    lines.append(f"{'✓' if all(t.ok for t in trips) else '✗'} backend round trips as expected")
    return lines


def copy_on_read(figures: Figures, setup: Setup, legs: Sequence[Leg]) -> list[str]:
    """Each copied leg: the client's transfer time through the copying way over that of the
    same read without copy (its stand-in, through `mitmdump -s`: one process, as the copying
    way), in the same run; the CPU each process spent meanwhile, which shows what the copy costs
    the cores the client's transfer runs on; and the copy's own CPU in the proxy, per MiB."""
    ours = S3_MULTI
    lines = []
    for way in setup.ways:
        for leg in legs:
            if way.solely is None or not leg.runs_on(way) or not setup.runs(leg):
                continue
            plain = figures.legs[leg.stand_in or ""]
            uncopied, copied = figures.runs(setup, plain, ours), figures.runs(setup, leg, way)
            value = run_ratios(  # times are sizes over rates: theirs / ours in MB/s
                [metric(plain)(m) for m in uncopied], [metric(leg)(m) for m in copied]
            )
            met = value is not None and value <= setup.copy_target
            own = copy_cpu_per_mib(copied, uncopied, leg.size)
            lines += [
                f"{'✓' if met else '✗'} {leg.label}: the client's transfer time, {way.name} / "
                f"{ours.name}: {number(value, 2)} (target <= {setup.copy_target:g})",
                f"  CPU seconds per transfer while the client read, with copy: "
                f"{cpu_per_transfer(copied)}; without: {cpu_per_transfer(uncopied)}",
                f"  the copy's own CPU in the proxy: {number(own, 2)} ms per MiB",
            ]
    return lines


def copy_cpu_per_mib(
    copied: Sequence[Measured], uncopied: Sequence[Measured], size: int
) -> float | None:
    """The copying proxy's CPU per transfer less that of the proxy without copy, per MiB of
    the object (medians of per-run differences, in ms)."""
    differences = []
    for with_copy, without in zip(copied, uncopied, strict=False):
        a, b = with_copy.cpu_seconds, without.cpu_seconds
        if a is not None and b is not None and with_copy.result.counted and without.result.counted:
            per = a / with_copy.result.counted - b / without.result.counted
            differences.append(per * 1000 / (size / MIB))
    return median(differences)


def cpu_per_transfer(runs: Sequence[Measured]) -> str:
    """Each process's CPU per transfer (medians over runs), those that used 0.01 s or more."""
    names = dict.fromkeys(name for m in runs for name in m.cpu_by_service)
    used = {}
    for name in names:
        seconds = median(
            m.cpu_by_service[name] / m.result.counted
            for m in runs
            if name in m.cpu_by_service and m.result.counted
        )
        if seconds is not None and seconds >= 0.01:
            used[name] = seconds
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in used.items()) or "-"


def report(
    settings: Settings,
    machine: list[str],
    setups: Sequence[Setup],
    samples: Samples,
    legs: Sequence[Leg],
    trips: list[Trip],
    problems: list[str],
) -> str:
    figures = Figures(samples, legs)
    small = [leg for leg in legs if not leg.large]
    large = [leg for leg in legs if leg.large]
    uncopied = [leg for leg in legs if not leg.copies]  # copied legs have a target of their own
    s = settings
    repeat = f"repeated for at least {s.large_seconds:g} s" if s.large_seconds else "once"
    parts = [
        *machine,
        f"small legs: wrk, {s.connections} keep-alive connections, {s.seconds} s per leg, "
        f"medians of {s.runs} run(s); large legs: one connection, each transfer {repeat}, "
        f"medians of {s.large_runs} run(s); ratios are medians of per-run ratios; "
        "MB = 10^6 bytes",
    ]
    for setup in setups:
        here = [leg for leg in small if setup.runs(leg)]
        parts += [
            "",
            f"#### {setup.name} backends",
            "",
            throughput_table(figures, setup, here),
            "",
            latency_table(figures, setup, here),
            "",
            cpu_table(figures, setup, here),
        ]
        if large:
            parts += ["", throughput_table(figures, setup, [g for g in large if setup.runs(g)])]
    for note in (*NOTES, FAILED_NOTE) if problems else NOTES:
        parts += ["", note]
    parts += ["", rss_table(samples, legs)]
    if trips:
        parts += ["", "Backend round trips, counted by nginx itself:", "", trips_table(trips)]
    for setup in setups:
        if setup.targets:
            parts += ["", f"targets ({setup.name} backends):"]
            parts += targets(figures, setup, uncopied, trips)
        if setup.peer is not None:
            parts += ["", f"targets against {setup.peer.name} ({setup.name} backends):"]
            parts += peer_targets(figures, setup, setup.peer, uncopied)
        copied = copy_on_read(figures, setup, large)
        if copied:
            parts += ["", f"copy on read ({setup.name} backends):", *copied]
    if problems:
        parts += ["", "PROBLEMS (the numbers above may not count):", *(f"- {p}" for p in problems)]
    return "\n".join(parts)
