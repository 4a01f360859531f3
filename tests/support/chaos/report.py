"""The chaos run's figures, as lines: what the clients did, the faults, the repairs the proxy
counted, how long settling took, and what the audit found."""

from __future__ import annotations

from collections import Counter

from tests.support.chaos.faults import OUTAGE_MARGIN, during_outage, outages
from tests.support.chaos.history import DELETE, GET, LIST, PUT
from tests.support.chaos.run import Result


def _requests(result: Result) -> list[str]:
    lines = []
    for kind in (PUT, GET, DELETE, LIST):
        ops = [op for op in result.ops if op.kind == kind]
        outcomes = Counter(op.outcome for op in ops)
        shown = ", ".join(f"{outcome}: {n:,}" for outcome, n in sorted(outcomes.items()))
        acked = sum(op.acked for op in ops)
        lines.append(f"  {kind:<6} {len(ops):>7,} ({acked:,} acknowledged/answered; {shown})")
    return lines


def _faults(result: Result) -> list[str]:
    lines = []
    for name in sorted({f.server for f in result.faults}):
        spans = outages(result.faults, name)
        restarts = [f.answered - f.restarted for f in result.faults if f.server == name]
        down = sum(end - start for start, end in spans)
        lines.append(
            f"  {name}: killed {len(spans)} times, down {down:.1f} s in all; restart to S3 "
            f"answering {min(restarts):.1f}-{max(restarts):.1f} s"
        )
    return lines or ["  none"]


def _metrics(result: Result) -> list[str]:
    shown = [f"  {name} = {value:g}" for name, value in sorted(result.metrics.items()) if value]
    return shown or ["  (no replication or failover counted)"]


def report(result: Result) -> list[str]:
    settings, findings = result.settings, result.findings
    total = len(result.ops)
    settled = "never" if result.settled_after is None else f"{result.settled_after:.1f} s"
    equal = "never" if result.equal_after is None else f"{result.equal_after:.1f} s"
    primary = next(iter(result.held), "main")

    def by_outage(reads: list) -> str:
        during = sum(during_outage(result.faults, primary, r.start, r.end) for r in reads)
        return f"{during:,} during an outage of the primary, {len(reads) - during:,} otherwise"

    writes_while_up = [
        op
        for op in result.ops
        if op.kind in (PUT, DELETE) and not during_outage(result.faults, primary, op.start, op.end)
    ]
    refused_while_up = sum(op.outcome.startswith("5") for op in writes_while_up)
    lost = [v for v in result.violations if not v.startswith(("never written", "deleted"))]
    wrong = len(result.violations) - len(lost)
    return [
        f"chaos run: seed {result.seed}, {settings.clients} clients, {settings.keys} keys, "
        f"{result.ran_for:.1f} s, proxy workers {settings.workers}",
        f"requests: {total:,} ({total / max(result.ran_for, 0.001):,.0f}/s)",
        *_requests(result),
        f"writes refused (5xx) outside the primary's outages (+{OUTAGE_MARGIN:g} s): "
        f"{refused_while_up:,} of {len(writes_while_up):,}",
        f"faults injected: {len(result.faults)}",
        *_faults(result),
        "replication and failover, as the proxy counted them:",
        *_metrics(result),
        f"time to settle (faults over to ready, nothing pending): {settled}; "
        f"replicas equal to the primary {equal} after that",
        *(f"  +{t:.1f} s: {what}" for t, what in result.settling),
        f"audit: {findings.reads_checked:,} GETs and {findings.listed_checked:,} listed keys "
        f"checked, {len(next(iter(result.held.values()), {}))} keys on the primary at the end",
        f"  stale reads (bytes an acknowledged write had replaced): {by_outage(findings.stale)}",
        f"  missing reads (404 for a key surely there): {by_outage(findings.missing)}",
        f"lost or resurrected on a backend: {len(lost)}; wrong reads: {wrong}",
        *(f"  VIOLATION {v}" for v in result.violations[:40]),
    ]
