"""The client compatibility table printed after every run, from that run's results: one row per
client (`@pytest.mark.client(name, how)` on its tests), saying whether its tests passed, failed,
or were skipped, with why (a toolchain that is not installed is not a client that fails).

tests/conftest.py registers its plugin (`configure`); `table` is the rows, from the outcomes.
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
_CLIENT = "client"  # the user property that names a test's client
_WORST = {"passed": 0, "skipped": 1, "failed": 2}  # a test's phases: the worst one is its outcome


def configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "client(name, how): an end-to-end test of a real client; its outcome goes into the "
        "client compatibility table printed at the end of the run",
    )
    config.pluginmanager.register(Table(), "client-compatibility")


class Table:
    """The pytest plugin: each client test's outcome, then the table at the end of the run."""

    def __init__(self) -> None:
        self.results: Results = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """The client a test is of rides on its report (`user_properties`): under pytest-xdist
        the report is made in a worker and logged, with them, where the table is printed."""
        report = yield
        marker = item.get_closest_marker("client")
        if marker is not None:
            report.user_properties.append((_CLIENT, tuple(marker.args)))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        client = next((v for k, v in report.user_properties if k == _CLIENT), None)
        if client is None or (report.when != "call" and report.outcome == "passed"):
            return
        reason = _skip_reason(report) if report.skipped else ""
        tests = self.results.setdefault(tuple(client), {})
        seen = tests.get(report.nodeid)
        if seen is None or _WORST[report.outcome] > _WORST[seen.outcome]:
            tests[report.nodeid] = Outcome(report.outcome, reason)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.results:
            return
        terminalreporter.section("client compatibility (this run)")
        for line in table(self.results):
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
