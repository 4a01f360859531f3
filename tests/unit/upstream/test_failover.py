"""The journey's outage rules (addon.upstream.failover, through Journey): backends marked down are
not tried, and a read the primary cannot answer goes where the outage table says. Scripted
backends, no network: each row drives a whole journey and reads what the client would get."""

from __future__ import annotations

import pytest

from addon.config.settings import Backend
from addon.namespace.hiding import hidden
from addon.s3.errors import S3Error
from addon.s3.operations import classify, parse_path
from addon.upstream.health import Health, Outlook
from addon.upstream.journey import (
    Answer,
    AskNext,
    Consult,
    InspectBody,
    Journey,
    Replace,
)

MAIN = Backend(0, "main", "AK0", "s0", "http://10.0.0.1:9000", meta_bucket="meta")
DR = Backend(1, "dr", "AK1", "s1", "http://10.0.0.2:9000", meta_bucket="meta", replicate="async")
DR2 = Backend(2, "dr2", "AK2", "s2", "http://10.0.0.3:9000", meta_bucket="meta", replicate="sync")
OLD = Backend(3, "old", "AK3", "s3", "http://10.0.0.4:9000")
WARM = Backend(1, "warm", "AK1", "s1", "http://10.0.0.2:9000")
COLD = Backend(2, "cold", "AK2", "s2", "http://10.0.0.3:9000")


def body_of(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>x</Message></Error>".encode()


def drive(
    method: str,
    backends: tuple[Backend, ...],
    world: dict[str, str],
    outlook: Outlook,
    meta: bool = True,
    health: Health | None = None,
) -> tuple[str, str, Journey]:
    """Run a journey against scripted backends. `world`: each backend's behaviour ("hit",
    "miss", "refused", "timeout", "503"). Returns (who answered: a backend's name or "proxy",
    what: the status or the error's code and message, the journey)."""
    target = parse_path("/bkt/k")
    operation = classify(method, target, ["uploads"] if method == "POST" else [])
    assert operation is not None
    reads = method in ("GET", "HEAD")
    trip = Journey(
        operation,
        method,
        target,
        backends if reads else backends[:1],
        hiding=hidden if meta and reads else None,
        clock=lambda: 0.0,
        outlook=outlook,
        health=health,
    )
    first = trip.start()
    if isinstance(first, S3Error):
        return "proxy", f"{first.status} {first.message}", trip
    backend = first
    for _ in range(20):
        behaviour = world[backend.name]
        if behaviour == "refused":
            verdict = trip.unreachable("Connect call failed", at_once=True)
        elif behaviour == "timeout":
            verdict = trip.timed_out("no answer within 2s")
        else:
            status = {"hit": 200, "miss": 404, "503": 503}[behaviour]
            verdict = trip.headers(status)
            if isinstance(verdict, InspectBody):
                verdict = trip.body(body_of("NoSuchKey" if status == 404 else "SlowDown"))
        if isinstance(verdict, Consult):
            # The tombstone lookup on the primary: none.
            verdict = trip.headers(404)
        match verdict:
            case Answer():
                return backend.name, str(trip.current.status), trip
            case AskNext(following):
                backend = following
            case Replace(error):
                return "proxy", f"{error.status} {error.message or error.code}", trip
    raise AssertionError("the journey did not end")


DOWN = Outlook(down=frozenset({"main"}))


def certified(*replicas: Backend) -> Outlook:
    return Outlook(down=frozenset({"main"}), failover=replicas)


# --- the outage table (README): what a client sees while the primary is down ---------------------

CERTIFIED = ((MAIN, DR), certified(DR), True)
CERTIFIED_WITH_FALLBACK = ((MAIN, DR, OLD), certified(DR), True)
NOT_CERTIFIED = ((MAIN, DR, OLD), DOWN, True)
NO_META = ((MAIN, OLD), DOWN, False)
NO_CERT = "503 Backend main is down and no replica is certified in sync to answer reads."
UNCHECKED = "503 Backend main is down; a fallback's copy cannot be checked against deletes."
ONLY_MAIN = "503 Backend main is down; only it can tell whether this key exists."

OUTAGE_TABLE = [
    # the key is on the replica (and on the fallback)
    ("on-replica", CERTIFIED, {"dr": "hit", "old": "hit"}, ("dr", "200")),
    ("on-replica", CERTIFIED_WITH_FALLBACK, {"dr": "hit", "old": "hit"}, ("dr", "200")),
    ("on-replica", NOT_CERTIFIED, {"dr": "hit", "old": "hit"}, ("proxy", NO_CERT)),
    ("on-replica", NO_META, {"old": "hit"}, ("old", "200")),
    # not on the replica: a certified replica's 404 is authoritative, unless a fallback that
    # is not a replica could hold a copy of a deleted key (its tombstone is on the primary)
    ("not-on-replica", CERTIFIED, {"dr": "miss", "old": "hit"}, ("dr", "404")),
    ("not-on-replica", CERTIFIED_WITH_FALLBACK, {"dr": "miss", "old": "hit"}, ("proxy", UNCHECKED)),
    ("not-on-replica", NOT_CERTIFIED, {"dr": "miss", "old": "hit"}, ("proxy", NO_CERT)),
    ("not-on-replica", NO_META, {"old": "hit"}, ("old", "200")),
    # nowhere: never a 404 but from a certified replica
    ("nowhere", CERTIFIED, {"dr": "miss", "old": "miss"}, ("dr", "404")),
    ("nowhere", NOT_CERTIFIED, {"dr": "miss", "old": "miss"}, ("proxy", NO_CERT)),
    ("nowhere", NO_META, {"old": "miss"}, ("proxy", ONLY_MAIN)),
    # deleted through the proxy: the replica got the delete, the fallback still has its copy
    ("deleted", CERTIFIED, {"dr": "miss", "old": "hit"}, ("dr", "404")),
    ("deleted", CERTIFIED_WITH_FALLBACK, {"dr": "miss", "old": "hit"}, ("proxy", UNCHECKED)),
    ("deleted", NOT_CERTIFIED, {"dr": "hit", "old": "hit"}, ("proxy", NO_CERT)),  # missed it
    ("deleted", NO_META, {"old": "hit"}, ("old", "200")),  # deletes never stick there
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "key, setup, world, expected",
    OUTAGE_TABLE,
    ids=[f"{row[0]}-{i}" for i, row in enumerate(OUTAGE_TABLE)],
)
def test_the_outage_table_for_reads(method, key, setup, world, expected):
    backends, outlook, meta = setup
    who, what, trip = drive(method, backends, {"main": "refused", **world}, outlook, meta)
    assert (who, what) == expected
    assert trip.attempts[0].skipped  # the primary, marked down, was not tried
    assert "(failover: main down)" in trip.summary("/bkt/k")
    assert not any(a.what == "tombstone" for a in trip.attempts)  # no lookup on the primary


@pytest.mark.parametrize("setup", [CERTIFIED, NOT_CERTIFIED, NO_META], ids=["cert", "not", "none"])
@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE"])
def test_writes_are_a_503_at_once_whatever_the_replicas(setup, method):
    backends, outlook, meta = setup
    who, what, trip = drive(method, backends, {}, outlook, meta)
    assert (who, what) == ("proxy", "503 Backend main is down.")
    assert len(trip.attempts) == 1 and trip.attempts[0].skipped  # nothing was sent anywhere
    assert "via [main down (skipped)] answered by proxy" in trip.summary("/bkt/k")


def test_read_failover_off_answers_every_read_503_at_once():
    outlook = Outlook(down=frozenset({"main"}), read_failover=False)
    who, what, _ = drive("GET", (MAIN, OLD), {"old": "hit"}, outlook, meta=False)
    assert (who, what) == ("proxy", "503 Backend main is down.")


def test_without_any_replica_a_metabucket_keeps_the_primarys_own_error():
    """No replica configured: nothing to fail over to; the 503 names what happened, as before."""
    who, what, trip = drive("GET", (MAIN, OLD), {"main": "refused", "old": "hit"}, Outlook())
    assert (who, what) == ("proxy", "503 Backend main is unreachable.")
    assert "failover" not in trip.summary("/bkt/k")
    who, what, _ = drive("GET", (MAIN, OLD), {"old": "hit"}, DOWN)
    assert (who, what) == ("proxy", "503 Backend main is down.")


def test_the_flow_comment_says_failover_and_who_answered():
    _, _, trip = drive("GET", (MAIN, DR), {"dr": "hit"}, certified(DR))
    assert trip.summary("/bkt/k") == (
        "GetObject /bkt/k via [main down (skipped), dr 200 0ms] answered by dr "
        "(failover: main down)"
    )
    assert trip.cause == "main down" and not trip.by_proxy


# --- the primary failing during this request (not marked down yet) -------------------------------


@pytest.mark.parametrize(
    "primary, cause",
    [("refused", "main unreachable"), ("timeout", "main timed out"), ("503", "main 503")],
)
def test_a_read_the_primary_fails_now_goes_to_the_certified_replica(primary, cause):
    outlook = Outlook(failover=(DR,))
    who, what, trip = drive("GET", (MAIN, DR), {"main": primary, "dr": "hit"}, outlook)
    assert (who, what) == ("dr", "200")
    assert trip.answered_by == f"dr (failover: {cause})"


def test_a_5xx_without_a_certified_replica_is_the_primarys_answer():
    """A 5xx is an answer (503 SlowDown under load): it only fails over to a certified replica."""
    who, what, _ = drive("GET", (MAIN, OLD), {"main": "503", "old": "hit"}, Outlook(), meta=False)
    assert (who, what) == ("main", "503")


def test_an_unreachable_primary_without_a_metabucket_asks_the_fallbacks():
    who, what, trip = drive("GET", (MAIN, OLD), {"main": "timeout", "old": "hit"}, Outlook(), False)
    assert (who, what) == ("old", "200")
    assert trip.answered_by == "old (failover: main timed out)"


def test_a_failing_certified_replica_is_skipped_for_the_next():
    outlook = certified(DR, DR2)
    who, what, _ = drive("GET", (MAIN, DR, DR2), {"dr": "timeout", "dr2": "hit"}, outlook)
    assert (who, what) == ("dr2", "200")
    who, what, trip = drive("GET", (MAIN, DR, DR2), {"dr": "refused", "dr2": "503"}, outlook)
    assert (who, what) == ("dr2", "503")  # the last one's 5xx is its answer
    who, what, trip = drive("GET", (MAIN, DR, DR2), {"dr": "refused", "dr2": "timeout"}, outlook)
    assert (who, what) == ("proxy", "503 Backend main is down and no replica in sync could answer.")
    assert trip.answered_by == "proxy (failover: main down)"


def test_a_certified_replicas_404_is_not_asked_again_elsewhere():
    outlook = certified(DR, DR2)
    who, what, trip = drive("GET", (MAIN, DR, DR2), {"dr": "miss", "dr2": "hit"}, outlook)
    assert (who, what) == ("dr", "404")
    assert [a.backend.name for a in trip.attempts] == ["main", "dr"]


# --- down fallbacks while the primary answers ----------------------------------------------------


def test_a_down_fallback_is_skipped_like_a_miss_without_being_tried():
    outlook = Outlook(down=frozenset({"warm"}))
    world = {"main": "miss", "warm": "hit", "cold": "hit"}
    who, what, trip = drive("GET", (MAIN, WARM, COLD), world, outlook, meta=False)
    assert (who, what) == ("cold", "200")
    assert trip.summary("/bkt/k") == (
        "GetObject /bkt/k via [main 404 0ms, warm down (skipped), cold 200 0ms] answered by cold"
    )


def test_when_only_down_fallbacks_are_left_the_client_gets_not_found():
    outlook = Outlook(down=frozenset({"warm", "cold"}))
    world = {"main": "miss"}
    who, what, trip = drive("GET", (MAIN, WARM, COLD), world, outlook, meta=False)
    assert (who, what) == ("proxy", "404 The specified key does not exist.")
    assert [a.skipped for a in trip.attempts] == [False, True, True]


def test_a_down_fallback_after_the_tombstone_lookup_is_skipped_too():
    outlook = Outlook(down=frozenset({"warm"}))
    world = {"main": "miss", "warm": "hit", "cold": "hit"}
    who, _, trip = drive("GET", (MAIN, WARM, COLD), world, outlook, meta=True)
    assert who == "cold"
    assert [a.what for a in trip.attempts] == ["", "tombstone", "", ""]


# --- health is told every attempt ----------------------------------------------------------------


def test_every_attempt_is_reported_to_health():
    health = Health(["main", "dr", "old"], clock=lambda: 0.0)
    drive("GET", (MAIN, OLD), {"main": "refused", "old": "hit"}, Outlook(), False, health)
    assert health.down() == {"main"}  # refused: at once
    drive("GET", (MAIN, OLD), {"main": "503"}, Outlook(), False, health)
    assert health.down() == frozenset()  # a 5xx is an answer: up again
    for _ in range(2):
        drive("GET", (MAIN, OLD), {"main": "miss", "old": "timeout"}, Outlook(), False, health)
    assert health.down() == frozenset()  # old failed twice: not yet
    drive("GET", (MAIN, OLD), {"main": "miss", "old": "timeout"}, Outlook(), False, health)
    assert health.down() == {"old"}  # its third failure in a row
