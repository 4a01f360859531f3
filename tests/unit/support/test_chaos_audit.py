"""The chaos run's audit rules (tests/support/chaos/history.py) on made-up histories: the
audit must catch each kind of loss and wrong read, and accept what concurrency allows."""

from __future__ import annotations

from tests.support.chaos.history import (
    ABSENT,
    DELETE,
    GET,
    LIST,
    PUT,
    UNACKED_GRACE,
    KeyWrites,
    Op,
    audit_history,
    check_final,
)


def put(value: str, start: float, end: float, outcome: str = "200", key: str = "k") -> Op:
    return Op(0, PUT, key, start, end, outcome, value)


def delete(start: float, end: float, outcome: str = "204", key: str = "k") -> Op:
    return Op(0, DELETE, key, start, end, outcome)


def get(value: str | None, start: float, end: float, key: str = "k") -> Op:
    return Op(1, GET, key, start, end, "200" if value else "404", value)


def finals(*writes: Op) -> set[str | None]:
    return KeyWrites(writes).possible_finals()


def test_the_last_acknowledged_write_is_the_only_final_state_when_none_overlap():
    assert finals(put("a", 0, 1), put("b", 2, 3)) == {"b"}
    assert finals(put("a", 0, 1), delete(2, 3)) == {ABSENT}
    assert finals() == {ABSENT}


def test_overlapping_writes_may_end_either_way():
    assert finals(put("a", 0, 2), put("b", 1, 3)) == {"a", "b"}
    assert finals(put("a", 0, 2), delete(1, 3)) == {"a", ABSENT}
    assert finals(put("x", 0, 1), put("a", 2, 4), put("b", 3, 5), delete(3.5, 6)) == {
        "a",
        "b",
        ABSENT,
    }


def test_an_unacknowledged_write_may_or_may_not_have_happened_within_its_grace():
    assert finals(put("u", 0, 1, outcome="503")) == {ABSENT, "u"}
    assert finals(delete(2, 3), put("u", 4, 5, outcome="error")) == {ABSENT, "u"}
    late = 1 + UNACKED_GRACE + 1
    assert finals(put("u", 0, 1, outcome="503"), put("b", late, late + 1)) == {"b"}


def test_what_a_backend_holds_against_the_final_states():
    writes = KeyWrites([put("a", 0, 1), put("b", 2, 3)])
    assert check_final("k", writes, "b", "main") is None
    assert check_final("k", writes, "a", "main").startswith("lost write: main holds k = a")
    assert check_final("k", writes, ABSENT, "main").startswith("lost write")
    assert check_final("k", writes, "zz", "main").startswith("never written")
    deleted = KeyWrites([put("a", 0, 1), delete(2, 3)])
    assert check_final("k", deleted, "a", "dr").startswith("resurrected delete: dr holds k")
    assert check_final("other", None, "a", "main").startswith("never written")


def _violations(*ops: Op) -> tuple[list[str], int]:
    _, findings = audit_history(ops)
    return findings.violations, len(findings.stale)


def test_a_read_of_bytes_never_written_or_not_yet_written_is_a_violation():
    assert _violations(put("a", 0, 1), get("a", 2, 3)) == ([], 0)
    assert _violations(put("a", 0, 1), get("a", 0.5, 0.6)) == ([], 0)  # concurrent: may see it
    found, _ = _violations(put("a", 0, 1), get("zz", 2, 3))
    assert len(found) == 1 and found[0].startswith("never written")
    found, _ = _violations(put("a", 5, 6), get("a", 2, 3))
    assert len(found) == 1 and found[0].startswith("never written")
    found, _ = _violations(put("a", 0, 1, key="other"), get("a", 2, 3))
    assert len(found) == 1 and found[0].startswith("never written")


def test_a_read_of_a_deleted_key_is_a_violation_unless_it_may_have_been_written_again():
    found, _ = _violations(put("a", 0, 1), delete(2, 3), get("a", 4, 5))
    assert len(found) == 1 and found[0].startswith("deleted: GET k")
    assert _violations(put("a", 0, 1), delete(2, 3), get("a", 2.5, 5)) == ([], 0)  # concurrent
    assert _violations(put("a", 0, 2.5), delete(2, 3), get("a", 4, 5)) == ([], 0)  # overlapped
    # written again after the delete (even unacknowledged): a stale read, not a deleted key
    rewritten = (put("a", 0, 1), delete(2, 3), put("b", 3.5, 3.6, outcome="503"), get("a", 4, 5))
    assert _violations(*rewritten) == ([], 1)


def test_a_read_of_bytes_replaced_before_it_began_is_stale_not_a_violation():
    assert _violations(put("a", 0, 1), put("b", 2, 3), get("a", 4, 5)) == ([], 1)
    assert _violations(put("a", 0, 1), put("b", 2, 3), get("b", 4, 5)) == ([], 0)


def test_every_key_a_listing_named_is_checked_as_a_read():
    listing = Op(2, LIST, "", 4, 5, "200", listed=(("k", "a"), ("j", "zz")))
    found, _ = _violations(put("a", 0, 1), delete(2, 3), listing)
    assert len(found) == 2
    assert found[0].startswith("deleted: LIST") and found[1].startswith("never written: LIST")


def test_a_404_for_a_key_surely_there_is_missing():
    def missing(*ops: Op) -> int:
        return len(audit_history(ops)[1].missing)

    assert missing(put("a", 0, 1), get(None, 2, 3)) == 1
    assert missing(put("a", 0, 1), put("b", 1.5, 1.8), get(None, 2, 3)) == 1
    assert missing(put("a", 0, 1), get(None, 0.5, 3)) == 0  # the PUT had not ended
    assert missing(put("a", 0, 1), delete(1.5, 1.8), get(None, 2, 3)) == 0
    assert missing(put("a", 0, 1), delete(2.5, 4, outcome="503"), get(None, 2, 3)) == 0
    assert missing(delete(0, 0.5, outcome="503"), put("a", 1, 1.2), get(None, 2, 3)) == 0
    late = 0.5 + UNACKED_GRACE + 1
    assert missing(delete(0, 0.5, outcome="503"), put("a", late, late + 1), get(None, 20, 21)) == 1
