"""What the chaos run's clients did, and the rules their history must obey: no I/O.

Every client operation is an `Op`: when it started and ended (seconds on the run's monotonic
clock), what the client heard, and the bytes (by MD5: every PUT writes bytes of its own, so
the MD5 names the write). A write's effect on the primary happened at one moment of its
*effect window*: [start, end] when the client heard a 2xx (acknowledged); when it did not, the
write may or may not have happened, at a moment in [start, end + UNACKED_GRACE] (the proxy or
a backend may finish it a little after the client heard an error).

The rules, per key (the bucket starts empty):

- **Final state** (`possible_finals`): the object on the primary at the end is the effect of
  a write X that can be ordered last: every acknowledged write Y other than X started before X's
  window ends (Y.start < X.hi), so that Y's moment can precede X's. An acknowledged write that
  ended before another acknowledged write started can never be last: its bytes on the primary
  at the end are a lost write (the later one's), or a resurrected delete. Absent with no write
  acknowledged at all: the starting state is possible too.
- **Reads** (`check_read`, GET and every key a LIST named, the ETag being the MD5): the bytes
  were written to that key by a PUT that started before the read ended, else *never written*;
  and they are not of a write an acknowledged DELETE definitely followed (X.hi < D.start) that
  ended before the read began, with no PUT on the key that may have taken effect after the
  DELETE and before the read ended, else *deleted*. A read of bytes another acknowledged write
  definitely replaced before the read began is *stale*, and a GET answered 404 while the key
  surely had an object (`KeyWrites.surely_present`) is *missing*: counted, not violations (a
  replica answering in failover may lag its async copies: addon/upstream/failover.py); the
  report tells those during an outage of the primary from the others.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PUT, GET, DELETE, LIST = "PUT", "GET", "DELETE", "LIST"
UNACKED_GRACE = 10.0  # seconds an unacknowledged write may still take effect after its end
ABSENT = None  # the state of a key with no object


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass(frozen=True)
class Op:
    """One client request. `outcome`: the HTTP status heard, or "error" (no complete answer).
    `value`: a PUT's MD5, a GET's MD5 or None (404), a DELETE's None. `listed`: a LIST's
    (key, ETag without quotes) pairs."""

    client: int
    kind: str
    key: str
    start: float
    end: float
    outcome: str
    value: str | None = None
    size: int = 0
    listed: tuple[tuple[str, str], ...] = ()

    @property
    def acked(self) -> bool:
        """A write the client heard succeed; a read that was answered (a 404 is an answer)."""
        if self.kind == GET:
            return self.outcome in ("200", "404")
        return self.outcome in ("200", "204")

    @property
    def hi(self) -> float:
        """The latest moment this write's effect may have happened."""
        return self.end if self.acked else self.end + UNACKED_GRACE

    @property
    def state(self) -> str | None:
        """The key's state right after this write: the bytes' MD5, or ABSENT."""
        return self.value if self.kind == PUT else ABSENT


@dataclass
class Findings:
    """What the audit of a history found: violations (each a line saying which rule, key and
    operations) and counts that are not violations."""

    violations: list[str] = field(default_factory=list)
    stale: list[Op] = field(default_factory=list)  # reads of replaced bytes
    missing: list[Op] = field(default_factory=list)  # GETs answered 404 for a key surely there
    reads_checked: int = 0
    listed_checked: int = 0


class KeyWrites:
    """One key's writes, indexed for the rules: acknowledged writes and deletes by start, PUTs by
    start with the latest moment any of them may have taken effect so far."""

    def __init__(self, writes: Sequence[Op]) -> None:
        self.writes = list(writes)
        self.acked = sorted((w for w in writes if w.acked), key=lambda w: w.start)
        self.acked_starts = [w.start for w in self.acked]
        self.deletes = [w for w in self.acked if w.kind == DELETE]
        self.delete_starts = [w.start for w in self.deletes]
        puts = sorted((w for w in writes if w.kind == PUT), key=lambda w: w.start)
        self.put_starts = [w.start for w in puts]
        self.put_his = list(itertools.accumulate((w.hi for w in puts), max))
        self.by_value = {w.value: w for w in puts}
        self.acked_puts = [w for w in self.acked if w.kind == PUT]
        self.acked_put_starts = [w.start for w in self.acked_puts]
        every_delete = sorted((w for w in writes if w.kind == DELETE), key=lambda w: w.start)
        self.every_delete_starts = [w.start for w in every_delete]
        self.every_delete_his = list(itertools.accumulate((w.hi for w in every_delete), max))

    def possible_finals(self) -> set[str | None]:
        """The states the key may be in at the end (the final-state rule)."""
        finals: set[str | None] = set() if self.acked else {ABSENT}
        last = self.acked[-1] if self.acked else None
        second = self.acked[-2].start if len(self.acked) > 1 else float("-inf")
        for write in self.writes:
            latest_other = (
                float("-inf") if last is None else second if write is last else last.start
            )
            if latest_other < write.hi:
                finals.add(write.state)
        return finals

    def latest_written_after(
        self, ops: list[Op], starts: list[float], after: float, before: float
    ) -> Op | None:
        """Of `ops` (sorted by start, `starts` theirs), the one with the latest start that began
        after `after` and ended before `before`."""
        for op in reversed(ops[: bisect.bisect_left(starts, before)]):
            if op.start <= after:
                return None
            if op.end < before:
                return op
        return None

    def may_be_written_after(self, moment: float, before: float) -> bool:
        """A PUT that started before `before` may have taken effect after `moment`."""
        count = bisect.bisect_left(self.put_starts, before)
        return count > 0 and self.put_his[count - 1] > moment

    def surely_present(self, start: float, end: float) -> bool:
        """The key surely had an object throughout [start, end]: an acknowledged PUT ended
        before `start`, and no DELETE (acknowledged or not) that started before `end` may have
        taken effect after that PUT began."""
        count = bisect.bisect_left(self.acked_put_starts, start)
        put = next((w for w in reversed(self.acked_puts[:count]) if w.end < start), None)
        if put is None:
            return False
        deletes = bisect.bisect_left(self.every_delete_starts, end)
        return deletes == 0 or self.every_delete_his[deletes - 1] <= put.start


def describe(op: Op) -> str:
    value = f" {op.value[:8]}" if op.value else ""
    return f"{op.kind} {op.key}{value} [{op.start:.3f}, {op.end:.3f}] -> {op.outcome}"


def check_final(key: str, writes: KeyWrites | None, found: str | None, where: str) -> str | None:
    """A violation line when `found` (MD5 or ABSENT) on `where` cannot be the key's final state."""
    writes = writes or KeyWrites(())
    if found in writes.possible_finals():
        return None
    shown = "absent" if found is ABSENT else found[:8]
    history = "; ".join(describe(w) for w in writes.acked[-3:]) or "no acknowledged write"
    if found is ABSENT:
        rule = "lost write"
    elif found in writes.by_value:
        last = writes.acked[-1] if writes.acked else None
        rule = "resurrected delete" if last and last.kind == DELETE else "lost write"
    else:
        rule = "never written"
    return f"{rule}: {where} holds {key} = {shown}; last acknowledged: {history}"


def check_read(
    read: Op, key: str, value: str, writes: KeyWrites | None, findings: Findings
) -> None:
    """The read rules for one read (a GET, or one key of a LIST) that returned `value`."""
    source = writes.by_value.get(value) if writes else None
    if writes is None or source is None or source.start >= read.end:
        findings.violations.append(f"never written: {describe(read)} returned {key} {value[:8]}")
        return
    delete = writes.latest_written_after(
        writes.deletes, writes.delete_starts, source.hi, read.start
    )
    if delete is not None and not writes.may_be_written_after(delete.start, read.end):
        findings.violations.append(
            f"deleted: {describe(read)} returned {key} {value[:8]} written by "
            f"{describe(source)}, deleted by {describe(delete)}"
        )
    elif writes.latest_written_after(writes.acked, writes.acked_starts, source.hi, read.start):
        findings.stale.append(read)


def index(ops: Iterable[Op]) -> dict[str, KeyWrites]:
    """Every key's writes, indexed."""
    found: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind in (PUT, DELETE):
            found[op.key].append(op)
    return {key: KeyWrites(writes) for key, writes in found.items()}


def audit_history(ops: Sequence[Op]) -> tuple[dict[str, KeyWrites], Findings]:
    """The read rules over every answered GET and LIST; the writes by key, for the final-state
    rule (which needs what the backends hold)."""
    writes = index(ops)
    findings = Findings()
    for op in ops:
        if op.kind == GET and op.outcome == "200" and op.value is not None:
            findings.reads_checked += 1
            check_read(op, op.key, op.value, writes.get(op.key), findings)
        elif op.kind == GET and op.outcome == "404":
            findings.reads_checked += 1
            if op.key in writes and writes[op.key].surely_present(op.start, op.end):
                findings.missing.append(op)
        elif op.kind == LIST and op.outcome == "200":
            for key, etag in op.listed:
                findings.listed_checked += 1
                check_read(op, key, etag, writes.get(key), findings)
    return writes, findings
