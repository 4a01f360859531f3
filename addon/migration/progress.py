"""The drain's progress: one line redrawn in place on a terminal, a plain line now and then
otherwise (a log file, a pipe), and the summary at the end.

Drawn here rather than with tqdm or rich: a line of text is all it takes, and either would be a
new runtime dependency of the proxy's package, installed wherever the proxy is, for a command
that runs once per migration.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # annotations only: `s3-multi check` draws with it and needs no drain
    from addon.migration.drain import Report

_REDRAW = 0.2  # seconds between two drawings on a terminal
_PLAIN_EVERY = 10.0  # seconds between two lines elsewhere
_CLEAR = "\r\x1b[K"  # back to the line's start, and erase it


def size(n: float) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 12.3 MiB, 1.20 GiB."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.2f} {unit}" if unit == "GiB" else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def objects(n: int) -> str:
    return f"{n} object" if n == 1 else f"{n} objects"


def status(report: Report, now: float) -> str:
    """Where the drain is: objects done of those listed (+ while the listing goes on), bytes
    done likewise (copied or under way, skipped, failed), the copying rate, failures."""
    more = "" if report.listing_done else "+"
    elapsed = max(now - report.started, 1e-9)
    return (
        f"{report.done}/{report.listed}{more} {'object' if report.listed == 1 else 'objects'}, "
        f"{size(report.moved + report.passed)} of {size(report.listed_bytes)}{more}, "
        f"{size(report.moved / elapsed)}/s, {report.failed} failed"
    )


def terminal_line(report: Report, now: float, columns: int) -> str:
    """The status with a bar, to fit `columns`."""
    text = status(report, now)
    width = min(30, columns - len(text) - 4)
    if width < 5:
        return text[: columns - 1]
    fraction = report.done / report.listed if report.listed else 0.0
    return f"{bar(fraction, width)} {text}"


def summary(report: Report, now: float, dry_run: bool, interrupted: bool) -> list[str]:
    seconds = now - report.started
    verb = "would copy" if dry_run else "copied"
    first = (
        f"{verb} {objects(report.copied)} ({size(report.copied_bytes)}), "
        f"skipped {report.skipped.total()}, failed {report.failed}, in {seconds:.1f} s"
    )
    lines = [f"interrupted: {first}" if interrupted else first]
    if report.skipped:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
        lines.append(f"  skipped: {reasons}")
    if report.deleted:
        lines.append(f"  deleted from the fallback once copied: {report.deleted}")
    if dry_run:
        lines.append("  dry run: nothing was written")
    return lines


class Progress:
    """Shows a report as it changes: `tick` often, `say` for lines that stay. What it shows is
    the drain's by default; another command gives its own `status` (a plain line) and `drawn`
    (the line on a terminal, to fit its columns), and its `name` for the plain lines."""

    def __init__(
        self,
        stream: TextIO,
        tty: bool,
        clock: Callable[[], float] = time.monotonic,
        every: float | None = None,
        *,
        name: str = "migrate",
        status: Callable[[Any, float], str] = status,
        drawn: Callable[[Any, float, int], str] = terminal_line,
    ) -> None:
        self.stream = stream
        self.tty = tty
        self.clock = clock
        self.every = every if every is not None else (_REDRAW if tty else _PLAIN_EVERY)
        self.name, self.status, self.drawn = name, status, drawn
        self._last = float("-inf") if tty else clock()
        self._drawn = ""

    def tick(self, report: Any, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if now - self._last < self.every:
            return
        self._last = now
        if self.tty:
            columns = shutil.get_terminal_size().columns
            self._drawn = self.drawn(report, now, columns)
            self.stream.write(_CLEAR + self._drawn)
        else:
            self.stream.write(f"{self.name}: {self.status(report, now)}\n")
        self.stream.flush()

    def say(self, line: str, out: TextIO | None = None) -> None:
        """A line that stays above the drawn one; on `out` when it is not the progress line's
        stream (a command's results on stdout, its progress on stderr)."""
        out = out or self.stream
        if self.tty and self._drawn:
            self.stream.write(_CLEAR)
            self.stream.flush()
            out.write(line + "\n")
            out.flush()
            self.stream.write(self._drawn)
        else:
            out.write(line + "\n")
        self.stream.flush()

    def close(self, report: Any) -> None:
        """On a terminal, the line as it ends stays (the summary comes below it)."""
        if self.tty:
            self._last = float("-inf")
            self.tick(report)
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = ""
