"""addon.replication.certificates without I/O: the certificate's record and the rule of trust (when
a replica may answer reads the primary cannot). The reading and renewal against real servers are
in tests/e2e/replication/test_certificates.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from addon.config.settings import Backend
from addon.replication.certificates import (
    MARGIN,
    VALID_FOR,
    Certificate,
    Certificates,
    UnknownBacklog,
    epoch,
    iso,
    trusted,
)
from addon.upstream.backend_client import BackendClient
from addon.upstream.health import Health

T = 1_765_131_601.123  # 2025-12-07T18:20:01.123Z
ISSUED = Certificate("main", "dr", T, T + VALID_FOR, "host-1-2", "ab12")


def test_a_certificate_is_written_and_read_back_as_the_design_shows_it():
    body = json.loads(ISSUED.body())
    assert body == {
        "primary": "main",
        "replica": "dr",
        "issued": "2025-12-07T18:20:01.123Z",
        "until": "2025-12-07T18:20:16.123Z",
        "by": "host-1-2",
        "nonce": "ab12",
    }
    again = Certificate.parse(ISSUED.body())
    assert again is not None
    assert (again.primary, again.replica, again.by, again.nonce) == (
        "main",
        "dr",
        "host-1-2",
        "ab12",
    )
    assert again.issued == pytest.approx(T, abs=0.001)
    assert again.until == pytest.approx(T + VALID_FOR, abs=0.001)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'{"primary": "main"}',
        b'{"primary":"m","replica":"r","issued":"x","until":"y"}',
    ],
)
def test_an_unreadable_certificate_is_none(body):
    assert Certificate.parse(body) is None


def test_times_round_trip_to_the_millisecond():
    assert iso(T) == "2025-12-07T18:20:01.123Z"
    assert epoch(iso(T)) == pytest.approx(T, abs=0.001)
    assert epoch("2025-12-07T18:20:01Z") == pytest.approx(T - 0.123, abs=0.001)
    with pytest.raises(ValueError):
        epoch("yesterday")


# Each row: now, the replica's back_since, the primary's failing_since (relative to T), trusted?
TRUST = [
    pytest.param(1, None, None, True, id="fresh"),
    pytest.param(VALID_FOR - MARGIN - 0.01, None, None, True, id="just-inside-the-margin"),
    pytest.param(VALID_FOR - MARGIN + 0.01, None, None, False, id="within-the-margin-of-until"),
    pytest.param(VALID_FOR + 60, None, None, False, id="lapsed"),
    pytest.param(1, -5, None, True, id="replica-back-before-it-was-issued"),
    pytest.param(1, 0.5, None, False, id="replica-back-after-it-was-issued"),
    pytest.param(600, None, 5, True, id="primary-failing-since-it-was-valid: trusted all along"),
    pytest.param(600, None, VALID_FOR, False, id="primary-failing-since-after-it-lapsed"),
    pytest.param(600, 100, 5, False, id="replica-was-down-during-the-outage"),
    pytest.param(3, None, 5, True, id="primary-failing-from-later-on: now decides"),
]


@pytest.mark.parametrize("now, back_since, failing_since, expected", TRUST)
def test_the_rule_of_trust(now, back_since, failing_since, expected):
    back = None if back_since is None else T + back_since
    failing = None if failing_since is None else T + failing_since
    assert trusted(ISSUED, T + now, back, failing) is expected


def test_no_certificate_no_trust():
    assert not trusted(None, T)


MAIN = Backend(0, "main", "AK0", "s0", "http://127.0.0.1:1", meta_bucket="meta")
DR = Backend(1, "dr", "AK1", "s1", "http://127.0.0.1:1", meta_bucket="dr-meta", replicate="async")
BARE = Backend(2, "bare", "AK2", "s2", "http://127.0.0.1:1", replicate="sync")


class Clock:
    now = T

    def __call__(self) -> float:
        return self.now


def test_serving_is_the_replicas_up_and_certified(caplog):
    clock = Clock()
    health = Health(["main", "dr", "bare"], clock=clock)
    certificates = Certificates(MAIN, (DR, BARE), BackendClient(), health, UnknownBacklog(), clock)
    assert [r.name for r in certificates.replicas] == ["dr"]  # bare has no metaBucket
    assert "replica bare has no metaBucket" in caplog.text
    assert certificates.serving() == ()
    certificates.held["dr"] = ISSUED
    clock.now = T + 1
    assert certificates.serving() == (DR,)
    health.failed("dr", "refused", at_once=True)
    assert certificates.serving() == ()  # down: never served, whatever its certificate
    clock.now = T + 2
    health.answered("dr")
    assert certificates.serving() == ()  # back since after it was issued: a newer one needed
    certificates.held["dr"] = Certificate("main", "dr", T + 3, T + 3 + VALID_FOR)
    clock.now = T + 4
    assert certificates.serving() == (DR,)


def test_the_stand_in_backlog_never_lets_a_certificate_be_renewed():
    """Until the replication's outbox is wired, no certificate is written: failover reads 503."""
    health = Health(["main", "dr"])
    certificates = Certificates(MAIN, (DR,), BackendClient(), health, UnknownBacklog())
    assert asyncio.run(certificates.renew(DR)) is False  # and it asked no server (none listens)
    assert certificates.held["dr"] is None
