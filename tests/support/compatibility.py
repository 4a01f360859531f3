"""The client compatibility table printed after every run, from that run's results: one row per
client (`@pytest.mark.client(name, how)` on its tests), saying whether its tests passed, failed,
or were skipped, with why (a toolchain that is not installed is not a client that fails).

tests/conftest.py hands pytest's hooks to this module; `table` is the rows, from the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Outcome:
    """One test's outcome: passed, failed or skipped (with the skip's reason)."""

    outcome: str
    reason: str = ""


Results = dict[tuple[str, str], dict[str, Outcome]]  # (client, how) -> test id -> its outcome
RESULTS = pytest.StashKey[Results]()
_WORST = {"passed": 0, "skipped": 1, "failed": 2}  # a test's phases: the worst one is its outcome


def configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "client(name, how): an end-to-end test of a real client; its outcome goes into the "
        "client compatibility table printed at the end of the run",
    )
    config.stash[RESULTS] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    marker = item.get_closest_marker("client")
    if marker is not None and (report.when == "call" or report.outcome != "passed"):
        reason = _skip_reason(report) if report.skipped else ""
        tests = item.config.stash[RESULTS].setdefault(tuple(marker.args), {})
        seen = tests.get(item.nodeid)
        if seen is None or _WORST[report.outcome] > _WORST[seen.outcome]:
            tests[item.nodeid] = Outcome(report.outcome, reason)
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    results = terminalreporter.config.stash.get(RESULTS, {})
    if not results:
        return
    terminalreporter.section("client compatibility (this run)")
    for line in table(results):
        terminalreporter.write_line(line)


def table(results: Results) -> list[str]:
    """The table's lines (Markdown), a row per client in name order."""
    rows = ["| client | how | result |", "|---|---|---|"]
    for (name, how), tests in sorted(results.items()):
        rows.append(f"| {name} | {how} | {result(list(tests.values()))} |")
    return rows


def result(outcomes: list[Outcome]) -> str:
    """One client's cell: "works", "FAILS (1/2 passed)", or "skipped: why" (a skip is never
    counted as a failure, nor as a pass)."""
    ran = [o for o in outcomes if o.outcome != "skipped"]
    passed = sum(o.outcome == "passed" for o in ran)
    reasons = sorted({o.reason for o in outcomes if o.outcome == "skipped"})
    skipped = len(outcomes) - len(ran)
    if not ran:
        return "skipped: " + "; ".join(reasons)
    note = f"{skipped} skipped: {'; '.join(reasons)}" if skipped else ""
    if passed < len(ran):
        counted = f"{passed}/{len(ran)} passed"
        return f"FAILS ({counted}, {note})" if note else f"FAILS ({counted})"
    return f"works ({note})" if note else "works"


def _skip_reason(report: pytest.TestReport) -> str:
    """What pytest.skip (or importorskip) said, without its "Skipped: " prefix."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")
