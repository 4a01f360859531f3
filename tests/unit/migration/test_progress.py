"""The drain's progress line and summary (`addon.progress`), on a clock of the test's own."""

from __future__ import annotations

import io

from addon.migration.drain import Report
from addon.migration.listed import ALREADY, DELETED
from addon.migration.progress import Progress, size, status, summary, terminal_line


def report_at(started: float = 0.0) -> Report:
    report = Report(started=started)
    report.listed, report.listed_bytes = 4, 4 * 1024 * 1024
    report.copied, report.copied_bytes, report.moved = 1, 1024 * 1024, 1536 * 1024
    report.skipped[ALREADY] += 1
    report.passed = 1024 * 1024
    return report


def test_sizes_read_as_people_say_them() -> None:
    assert [size(n) for n in (0, 512, 1536, 12.3 * 1024**2, 1.2 * 1024**3)] == [
        "0 B",
        "512 B",
        "1.5 KiB",
        "12.3 MiB",
        "1.20 GiB",
    ]


def test_the_status_counts_objects_and_bytes_and_marks_a_listing_under_way() -> None:
    report = report_at()
    assert status(report, 2.0) == "2/4+ objects, 2.5 MiB of 4.0 MiB+, 768.0 KiB/s, 0 failed"
    report.listing_done = True
    assert status(report, 2.0).startswith("2/4 objects, 2.5 MiB of 4.0 MiB, ")


def test_the_terminal_line_has_a_bar_and_fits_the_width() -> None:
    report = report_at()
    report.listing_done = True
    line = terminal_line(report, 2.0, 100)
    assert line.startswith("[###############...............] 2/4 objects")
    assert len(line) < 100
    narrow = terminal_line(report, 2.0, 40)
    assert len(narrow) == 39 and not narrow.startswith("[")


def test_off_a_terminal_a_plain_line_now_and_then() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = Progress(out, tty=False, clock=lambda: now[0], every=10)
    report = report_at()
    for t in (1.0, 5.0, 10.5, 12.0, 21.0):
        now[0] = t
        progress.tick(report)
    progress.say("failed: /b/k from secondary: reasons")
    progress.close(report)
    lines = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "migrate: 2/4+ objects",
        "migrate: 2/4+ objects",
        "failed: /b/k from secondary: reasons",
    ]
    assert "\r" not in out.getvalue()


def test_on_a_terminal_said_lines_stay_above_the_redrawn_one() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True, clock=lambda: 1.0)
    report = report_at()
    progress.tick(report)
    progress.say("kept: /b/k on secondary changed since it was listed")
    progress.close(report)
    text = out.getvalue()
    drawn = text.split("\r\x1b[K")
    assert drawn[0] == "" and drawn[1].startswith("[")
    assert drawn[2].startswith("kept: /b/k on secondary changed since it was listed\n[")
    assert text.endswith("\n")


def test_the_summary_names_what_was_done_and_why_things_were_skipped() -> None:
    report = report_at()
    report.skipped[DELETED] += 2
    report.deleted = 1
    assert summary(report, 3.25, dry_run=False, interrupted=True) == [
        "interrupted: copied 1 object (1.0 MiB), skipped 3, failed 0, in 3.2 s",
        "  skipped: 1 already copied, 2 deleted (tombstone)",
        "  deleted from the fallback once copied: 1",
    ]
    assert summary(Report(started=0.0), 1.0, dry_run=True, interrupted=False) == [
        "would copy 0 objects (0 B), skipped 0, failed 0, in 1.0 s",
        "  dry run: nothing was written",
    ]
