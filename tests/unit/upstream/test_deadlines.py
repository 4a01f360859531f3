"""A deadline injects its expiry only into a flow still under way: never into one whose answer
went out whole, or that failed (mitmproxy's HTTP/1 layer crashes on an event for a request
whose stream has ended: seen in the chaos run)."""

from __future__ import annotations

import asyncio

from mitmproxy import http
from mitmproxy.test import tflow

from addon.upstream.deadlines import Deadline


def _expire(flow: http.HTTPFlow) -> list[str]:
    injected: list[str] = []

    async def run() -> None:
        deadline = Deadline(flow, lambda f, phase: injected.append(phase))
        deadline.start("answer", 0.01)
        await asyncio.sleep(0.05)

    asyncio.run(run())
    return injected


def test_a_flow_under_way_gets_its_expiry():
    flow = tflow.tflow()
    flow.live = True
    assert _expire(flow) == ["answer"]


def test_a_flow_answered_whole_gets_none():
    flow = tflow.tflow(resp=True)
    flow.live = True
    assert flow.response is not None and flow.response.timestamp_end is not None
    assert _expire(flow) == []


def test_a_flow_whose_answer_is_still_streaming_gets_it():
    flow = tflow.tflow(resp=True)
    flow.live = True
    assert flow.response is not None
    flow.response.timestamp_end = None
    assert _expire(flow) == ["answer"]


def test_a_failed_flow_gets_none():
    flow = tflow.tflow(err=True)
    flow.live = True
    assert _expire(flow) == []
