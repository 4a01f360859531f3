"""64 clients at once through the proxy for 15 seconds (the benchmark runs it for 60): no
errors, and every acknowledged write is on the primary with its bytes, checked out of band."""

from __future__ import annotations

import pytest

from tests.support import mixed_load

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_mixed_load_ends_with_no_errors_and_every_write_where_it_belongs(proxy, backends, bucket):
    tally = mixed_load.run(proxy, backends, bucket, clients=64, seconds=15)
    assert tally.errors == []
    assert mixed_load.audit(backends, bucket, tally) == []
    reads = sum(n for op, n in tally.operations.items() if op.startswith(("GET", "HEAD")))
    from_fallbacks = tally.operations["GET fallback"] + tally.operations["HEAD fallback"]
    assert from_fallbacks >= reads / 4, tally.operations  # about a third of the reads
    assert all(tally.operations[op] > 0 for op in ("PUT", "DELETE", "LIST", "GET deleted")), (
        tally.operations
    )
