"""addon.upstream.health, the state of each backend: fed attempts with a fake clock, it says who
is down, since when, and logs each change of state once (no network)."""

from __future__ import annotations

import logging

import pytest

from addon.upstream.health import FAILURES_TO_DOWN, PROBE_EVERY, Health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(["main", "dr"], clock=clock)


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "addon.upstream.health"]


# Each row: the events for "dr" in order, then whether it is up, and the log lines (by start).
# "ok": an answer (any status), "fail": a failure that counts, "refused": a failure at once.
TRANSITIONS = [
    pytest.param([], True, [], id="nothing-happened"),
    pytest.param(["fail", "fail"], True, [], id="two-failures-are-not-enough"),
    pytest.param(["fail"] * 3, False, ["backend dr is down: "], id="three-in-a-row"),
    pytest.param(["fail", "fail", "ok", "fail", "fail"], True, [], id="an-answer-resets-the-count"),
    pytest.param(["refused"], False, ["backend dr is down: "], id="refused-at-once"),
    pytest.param(
        ["fail"] * 6, False, ["backend dr is down: "], id="more-failures-while-down-say-nothing"
    ),
    pytest.param(
        ["refused", "ok"],
        True,
        ["backend dr is down: ", "backend dr is up again after "],
        id="an-answer-ends-it",
    ),
    pytest.param(
        ["refused", "ok", "ok", "refused", "refused", "ok"],
        True,
        [
            "backend dr is down: ",
            "backend dr is up again after ",
            "backend dr is down: ",
            "backend dr is up again after ",
        ],
        id="each-change-once",
    ),
]


@pytest.mark.parametrize("events, up, logged", TRANSITIONS)
def test_transitions_and_one_log_line_per_change(health, clock, caplog, events, up, logged):
    caplog.set_level(logging.INFO, logger="addon.upstream.health")
    changes: list[tuple[str, bool]] = []
    health.listeners.append(lambda name, is_up: changes.append((name, is_up)))
    for event in events:
        clock.now += 1
        if event == "ok":
            health.answered("dr")
        else:
            health.failed("dr", "timed out: no answer within 2s", at_once=event == "refused")
    assert health.is_up("dr") is up
    assert health.down() == (frozenset() if up else frozenset({"dr"}))
    said = lines(caplog)
    assert len(said) == len(logged)
    assert all(line.startswith(start) for line, start in zip(said, logged, strict=True))
    assert [up for _, up in changes] == [not s.startswith("backend dr is down") for s in logged]
    assert health.is_up("main")  # the other backend is untouched


def test_the_lines_say_why_how_many_and_for_how_long(health, clock, caplog):
    caplog.set_level(logging.INFO, logger="addon.upstream.health")
    for _ in range(FAILURES_TO_DOWN):
        health.failed("dr", "timed out: no answer within 2s")
    clock.now += 41.4
    health.answered("dr")
    assert lines(caplog) == [
        f"backend dr is down: timed out: no answer within 2s (3 failures); requests skip it, "
        f"probing every {PROBE_EVERY:g}s",
        "backend dr is up again after 41s",
    ]
    health.failed("main", "[Errno 111] Connect call failed", at_once=True)
    assert lines(caplog)[-1].startswith(
        "backend main is down: [Errno 111] Connect call failed (at once)"
    )


def test_a_5xx_is_an_answer(health):
    """The journey reports a 5xx as an answer (`Journey.headers`): it never marks down."""
    for _ in range(10):
        health.answered("dr")
    assert health.is_up("dr")


def test_failing_since_is_the_first_failure_of_the_streak_until_an_answer(health, clock):
    assert health.failing_since("main") is None
    health.failed("main", "timed out")
    first = clock.now
    clock.now += 5
    health.failed("main", "timed out")
    assert health.failing_since("main") == first  # not yet down, but failing since then
    clock.now += 5
    health.failed("main", "timed out")
    assert not health.is_up("main") and health.failing_since("main") == first
    clock.now += 30
    health.answered("main")
    assert health.failing_since("main") is None
    assert health.back_since("main") == clock.now
    assert health.back_since("dr") is None  # never down


def test_unknown_names_are_ignored(health):
    health.failed("elsewhere", "unreachable", at_once=True)
    health.answered("elsewhere")
    assert health.is_up("elsewhere") and health.down() == frozenset()
