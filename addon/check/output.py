"""What `s3-multi check` prints: for people, each difference on a line as it is found, then a
summary per bucket and backend (counts and bytes per kind) and the requests made, with a
progress line on a terminal (stderr); for machines (`--json`), one JSON object per difference
and a last one with the summary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TextIO

from addon.check.differences import (
    BUCKET_ELSEWHERE,
    COPY,
    CREATE,
    DELETE,
    MIGRATE,
    PRUNE,
    TOMBSTONED,
    Difference,
)
from addon.check.run import Report
from addon.check.sides import GET, HEAD, LIST, WRITE
from addon.migration.progress import Progress, size
from addon.s3.log_text import printable

# What --repair does about each kind, as the summary says it.
_REPAIRS = {
    COPY: "--repair copies the primary's object",
    DELETE: "--repair deletes the replica's copy",
    PRUNE: "--repair removes the tombstones",
    CREATE: "--repair creates the bucket",
    MIGRATE: "left to `s3-multi migrate` (or --repair --migrate)",
}
# What the others are, by kind.
_NOTES = {
    TOMBSTONED: "hidden from reads (the proxy never writes a fallback)",
    BUCKET_ELSEWHERE: "its keys are reported as any other",
}
_ONE = {LIST: "listing", HEAD: "HEAD", GET: "GET", WRITE: "write"}


def status(report: Report, now: float) -> str:
    """Where the run is: the bucket, keys compared and their rate, differences, repairs."""
    elapsed = max(now - report.started, 1e-9)
    repaired = f", {report.repaired} repaired" if report.repaired else ""
    failed = f", {report.failed} failed" if report.failed else ""
    return (
        f"{printable(report.bucket)}: {report.keys:,} keys compared "
        f"({report.keys / elapsed:,.0f}/s), {report.differences:,} differences{repaired}{failed}"
    )


def drawn(report: Report, now: float, columns: int) -> str:
    return status(report, now)[: max(columns - 1, 10)]


def progress(stream: TextIO, tty: bool) -> Progress:
    return Progress(stream, tty, name="check", status=status, drawn=drawn)


def line(bucket: str, d: Difference, outcome: str) -> str:
    """One difference for people."""
    where = printable(f"{bucket}/{d.key}" if d.key else bucket)
    text = f"{where}: {d.kind} on {d.backend}"
    text += f": {printable(d.detail)}" if d.detail else ""
    return f"{text} -> {outcome}" if outcome else text


def summary(
    report: Report,
    requests: Mapping[tuple[str, str], int],
    now: float,
    interrupted: bool = False,
) -> list[str]:
    """The run in a few lines: per bucket and backend, each kind's count and bytes (and what
    --repair does about it), then totals and requests."""
    lines = []
    bucket = None
    for (name, backend, kind), tally in sorted(report.found.items()):
        if name != bucket:
            bucket = name
            lines.append(f"bucket {printable(name)}:")
        keys = "key" if tally.count == 1 else "keys"
        note = _REPAIRS.get(tally.repair) or _NOTES.get(kind, "")
        lines.append(
            f"  {backend:<12} {kind:<22} {tally.count:>9,} {keys:<4} {size(tally.bytes):>10}"
            + (f"   {note}" if note else "")
        )
    seconds = max(now - report.started, 1e-9)
    head = "interrupted: " if interrupted else ""
    lines.append(
        f"{head}{report.buckets} buckets, {report.keys:,} keys compared in {seconds:.1f} s "
        f"({report.keys / seconds:,.0f} keys/s): {report.differences:,} differences, "
        f"{report.left:,} the config says should not be"
        + (f", {report.repaired:,} repaired" if report.repaired else "")
        + (f", {report.failed:,} repairs failed" if report.failed else "")
    )
    lines.append("requests: " + _requests(requests))
    return lines


def _requests(requests: Mapping[tuple[str, str], int]) -> str:
    by_backend: dict[str, list[str]] = {}
    for (backend, kind), count in sorted(requests.items()):
        by_backend.setdefault(backend, []).append(f"{count:,} {_ONE[kind] if count == 1 else kind}")
    return "; ".join(f"{b} {', '.join(kinds)}" for b, kinds in by_backend.items()) or "none"


class Human:
    """Each difference on a line of stdout, kept above the progress line."""

    def __init__(self, out: TextIO, shown: Progress) -> None:
        self.out, self.shown = out, shown

    def difference(self, bucket: str, difference: Difference, outcome: str, left: bool) -> None:
        self.shown.say(line(bucket, difference, outcome), self.out)

    def say(self, text: str) -> None:
        self.shown.say(text)


class JsonLines:
    """One JSON object per difference on stdout; lines for people go to the progress stream."""

    def __init__(self, out: TextIO, shown: Progress, primary: str) -> None:
        self.out, self.shown, self.primary = out, shown, primary

    def difference(self, bucket: str, difference: Difference, outcome: str, left: bool) -> None:
        d = difference
        record = {
            "bucket": bucket,
            "key": d.key,
            "kind": d.kind,
            "backend": d.backend,
            "primary": self.primary,
            "size": d.size,
            "etag": d.etag,
            "detail": d.detail,
            "repair": d.repair,
            "outcome": outcome,
            "left": left,
        }
        self.shown.say(json.dumps(record, ensure_ascii=False), self.out)

    def say(self, text: str) -> None:
        self.shown.say(text)


def json_summary(
    report: Report,
    requests: Mapping[tuple[str, str], int],
    now: float,
    status: int,
    error: str = "",
) -> str:
    """The last JSON line: totals, each (bucket, backend, kind)'s count and bytes, requests."""
    by_backend: dict[str, dict[str, int]] = {}
    for (backend, kind), count in sorted(requests.items()):
        by_backend.setdefault(backend, {})[kind] = count
    summary = {
        "buckets": report.buckets,
        "keys": report.keys,
        "seconds": round(now - report.started, 3),
        "differences": report.differences,
        "left": report.left,
        "repaired": report.repaired,
        "failed": report.failed,
        "found": [
            {"bucket": b, "backend": n, "kind": k, "count": t.count, "bytes": t.bytes}
            for (b, n, k), t in sorted(report.found.items())
        ],
        "requests": by_backend,
        "exit": status,
    }
    if error:
        summary["error"] = error
    return json.dumps({"summary": summary}, ensure_ascii=False)
