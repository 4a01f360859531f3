"""The chaos run, 15 seconds of it: 32 clients of mixed PUT/GET/DELETE/LIST on 40 keys through
the s3-multi command (two workers) over a SeaweedFS primary, an async replica and a sync
replica, while the primary and a replica are killed (SIGKILL) and started again at seeded
random moments; then, the repairs settled, every backend read directly: no acknowledged write
lost, no delete undone, every replica equal to the primary, no read of bytes never written or
deleted before it (tests/support/chaos/). The seed is printed first; CHAOS_SEED=N runs it
again with N. The longer run is the benchmark's: `python -m tests.benchmark.chaos`."""

from __future__ import annotations

import os

import pytest

from addon.local.seaweedfs import weed_binary
from tests.support.chaos.gateway import deployment
from tests.support.chaos.report import report
from tests.support.chaos.run import Settings, chaos

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="SeaweedFS's weed is not installed")


def test_nothing_acknowledged_is_lost_nor_a_delete_undone_under_chaos(tmp_path):
    seed = os.environ.get("CHAOS_SEED")
    settings = Settings(seconds=15, seed=int(seed) if seed else None, settle_timeout=30)
    with deployment(tmp_path, settings.workers) as deployed:
        result = chaos(deployed, settings)
    lines = report(result)
    print("\n" + "\n".join(lines))
    summary = "\n".join(lines)
    assert not result.violations, summary
    assert result.settled_after is not None, f"{summary}\n{result.last_readiness}"
    assert result.equal_after is not None, summary
    killed = {f.server for f in result.faults}
    assert "main" in killed and killed & {"async", "sync"}, summary  # the faults happened
    assert sum(op.acked for op in result.ops if op.kind == "PUT") >= 20, summary
    assert sum(op.acked for op in result.ops if op.kind == "DELETE") >= 5, summary
