"""Requests in flight, and the drain before exit on SIGTERM that waits for them.

A drain stops listening (mitmproxy's own `server` option, so no new connection is accepted; the
other workers of `s3-multi --workers`, or the other instances behind a balancer, take them),
lets every request in flight finish (a 1 GiB transfer included), then every copy on read still
landing on the primary, then the replication jobs running (`addon.replication`), bounded by the
drain timeout (copies still running then are cut short, their multipart uploads aborted; jobs
not done go to the outbox, written before the exit), then shuts mitmproxy down. Answers given
while draining say `Connection: close` (HTTP/1), so that clients do not send more requests on
connections about to go. A second SIGTERM, or SIGINT, stops at once (mitmproxy's own shutdown).

A request is in flight from its request head (`requestheaders`) to the end of its answer (the
addon's `response` hook, after its after-steps ran) or its failure (`error`); a flow that
disappears without either (its connection gone) stops counting when it is collected.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable

from mitmproxy import ctx, http

from addon.migration.copy_on_read import CopyTasks
from addon.ops import metrics
from addon.replication.service import Replication

log = logging.getLogger(__name__)
# After the last request in flight: time for its answer's last bytes to leave and for clients
# told `Connection: close` to close.
_LINGER = 0.5


class InFlight:
    """The requests this process is serving, and the copies on read it is landing."""

    def __init__(
        self, copies: CopyTasks, replication: Callable[[], Replication | None] = lambda: None
    ) -> None:
        self.copies = copies
        self.replication = replication  # the one in use now
        self._open: weakref.WeakKeyDictionary[http.HTTPFlow, weakref.finalize] = (
            weakref.WeakKeyDictionary()
        )
        self.draining = False
        self._task: asyncio.Task | None = None

    @property
    def count(self) -> int:
        return len(self._open)

    def started(self, flow: http.HTTPFlow) -> None:
        if flow not in self._open:
            metrics.IN_FLIGHT.inc()
            self._open[flow] = weakref.finalize(flow, metrics.IN_FLIGHT.dec)

    def finished(self, flow: http.HTTPFlow) -> bool:
        """Whether it was in flight (it is not any more)."""
        done = self._open.pop(flow, None)
        if done is None:
            return False
        done()  # runs once, here rather than when the flow is collected
        return True

    def closing(self, flow: http.HTTPFlow) -> None:
        """While draining, an HTTP/1 answer closes its connection after it."""
        http1 = flow.request.http_version.startswith("HTTP/1")
        if self.draining and http1 and flow.response is not None:
            flow.response.headers["connection"] = "close"

    def drain(self, timeout: float) -> None:
        """Begin the drain (SIGTERM); once begun, another SIGTERM stops at once."""
        if self._task is not None:
            log.warning("s3-multi: stopping now, %d requests still in flight", self.count)
            ctx.master.shutdown()
            return
        self._task = asyncio.get_running_loop().create_task(self._drain(timeout))

    async def _drain(self, timeout: float) -> None:
        self.draining = True
        ctx.options.update(server=False)  # stop listening; open connections go on
        log.info(
            "s3-multi: draining: no new connections, %d requests in flight, %d copies on read "
            "running, up to %gs",
            self.count,
            len(self.copies.running),
            timeout,
        )
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._open:
            log.warning(
                "s3-multi: drain timeout (%gs): stopping with %d requests in flight",
                timeout,
                self.count,
            )
        cut = await self.copies.wait(max(0.0, deadline - time.monotonic()))
        if cut:
            log.warning("s3-multi: drain timeout (%gs): %d copies on read cut short", timeout, cut)
        replication = self.replication()
        if replication is not None:
            left = await replication.stop(max(0.0, deadline - time.monotonic()))
            if left:
                log.info("s3-multi: %d replication jobs left to the outbox", left)
        if not self._open and not cut:
            await asyncio.sleep(min(_LINGER, max(0.0, deadline - time.monotonic())))
            log.info("s3-multi: drained, stopping")
        ctx.master.shutdown()
