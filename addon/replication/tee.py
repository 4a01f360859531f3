"""The streamed tee of a PutObject to the replicas: the client's object goes to the primary and
to each replica at once, in bounded memory at any size.

- **At once.** Each replica's PUT starts with the client's request (its own signature,
  UNSIGNED-PAYLOAD, the object's length known ahead) and takes the object's bytes as they pass
  the client's checks (`uploads.Tapped`: an aws-chunked body decoded, each signed chunk
  verified first). What describes the object goes as a copy would write it: the client's content
  headers, user metadata and tags, and the primary's name in x-amz-meta-s3multi-replica.
- **Nothing lands early.** The PUT's last byte is held back until `land`: once the primary has
  answered 2xx. A body refused on its way (a bad signature, a wrong hash, cut short), a primary
  that failed, or a flow that ended otherwise cuts the PUT (its connection closed before its
  end): nothing of it is stored on the replica.
- **Paced.** The client is read no faster than the slowest replica takes the bytes: `drain`
  (registered for the client's connection through `addon.mitm.drains` by the exchange) waits
  until the replica's connection has sent what it was given, as mitmproxy waits for the
  primary's. Before the replica's PUT is under way, SLACK bytes may wait for it. A body of
  at most WHOLE bytes is held instead (it is read whole anyway) and its PUT sent whole once
  released: one write, no connection taken while the primary works.
- **Bounded.** A replica that takes nothing for the drain's time (the exchange's bound, at most
  the replica's idleTimeout), that falls BUDGET bytes behind all the same, or that fails, is cut
  off from the tee and gets the repair job instead (`ReplicaJobs.now`, or a job after the client
  heard): the primary's object copied from the primary, as without a tee.
- **Never the wrong way round.** The PUT is conditional on the replica's state looked at just
  before it (`plan.landing_on`): one that lands late (a replica that hung with it while the
  proxy went away) never overwrites a write that came between. Once the replica answered, both
  sides are looked at (a HEAD each) and `plan` must find them equal; otherwise (a concurrent
  write or delete of the key came between, the replica stored it otherwise) the repair job
  runs, which reads the primary's current state and writes conditionally. Every tee that lands
  is followed by that look, after its landing: the last write to a replica's key is always
  checked against the primary after it.

`feed` never blocks (mitmproxy's stream callable calls it): it writes to the replica's connection
at once (`request_bodies.Pushed`); the waiting is `drain`'s, between two reads of the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from addon.migration.source import MIB
from addon.namespace.object_meta import REPLICA_MARK, SOURCE_ETAG, described
from addon.replication.plan import OBJECT, Done, landing_on, plan
from addon.replication.repair import PRIMARY, REPLICA, SideFailed
from addon.replication.replicator import ReplicaJobs
from addon.s3 import sigv4
from addon.s3.errors import error_code
from addon.upstream.backend_client import BackendError
from addon.upstream.request_bodies import Outlet, Pushed
from addon.upstream.retarget import Plan
from addon.upstream.uploads import BodyPlan

BUDGET = 4 * MIB  # bytes a replica may be behind before a piece comes (drained: ~64 KiB)
SLACK = 1 * MIB  # bytes that may wait for the replica's PUT to start before the client waits
WHOLE = 64 * 1024  # a body this small is held, and its PUT sent whole once released
_PAUSED_ABOVE = 64 * 1024  # asyncio's default high-water mark: a drain waits only beyond it
IDLE = 600.0  # seconds without a byte or a decision: the flow is gone, the tee is cut
_MAX_ANSWER = 64 * 1024
_SINGLE_PUT_MOST = 5 * 1024**3
_NOT_TEED = ("x-amz-server-side-encryption-customer-algorithm",)  # SSE-C: only the client's key
_OURS = (SOURCE_ETAG, REPLICA_MARK)


class Cut(Exception):
    """The tee stopped before its PUT landed; the message says why."""


class ReplicaTee:
    """One replica's PUT of the client's object, fed as the bytes come (an `uploads.BodyTap`):
    written to the replica's connection at once, as mitmproxy writes to the primary's (a task
    would wait for the event loop while mitmproxy relays the client's bytes)."""

    def __init__(
        self, jobs: ReplicaJobs, bucket: str, key: str, length: int, headers: list[tuple[str, str]]
    ) -> None:
        self.jobs, self.bucket, self.key, self.length = jobs, bucket, key, length
        self.headers = headers
        self.budget = BUDGET
        self._queue: deque[bytes] = deque()  # until the PUT's head is sent
        self._queued = 0
        self._outlet: Outlet | None = None
        self._waiting = 0  # what the replica's connection had yet to send after the last write
        self._started = asyncio.Event()  # the PUT's head is sent (or the tee is cut)
        self._fed = 0
        self._last = b""  # the object's last byte, held back until released
        self._decided = asyncio.Event()  # released, or cut
        self.released = False  # the last byte may go
        self.stopped = ""  # why it was cut
        self.task: asyncio.Future[str] | None = None
        if length > WHOLE:
            self._start()

    @property
    def name(self) -> str:
        return self.jobs.replica.name

    def feed(self, data: bytes) -> None:
        if self.stopped or not data:
            return
        self._fed += len(data)
        if self._fed > self.length:
            self.cut("the body is longer than announced")
            return
        if self._fed == self.length:
            data, self._last = data[:-1], data[-1:]
        if data:
            self._send(data)

    def end(self) -> None:
        if self._fed != self.length:
            self.cut(f"the body ended after {self._fed} of {self.length} bytes")

    def cut(self, why: str = "the upload went nowhere") -> None:
        if not (self.stopped or self.released):
            self.stopped = why
            self._queue.clear()
            self._queued = 0
            self._decided.set()
            self._started.set()

    async def landed(self) -> str:
        """Let the last byte go (the primary took the object): "" once the replica answered
        and both sides are equal, else why not (the repair job's turn)."""
        if self._fed != self.length:
            self.cut("the body did not come whole")
        if self.stopped:
            return f"tee cut: {self.stopped}"
        self.released = True
        self._decided.set()
        task = self.task or self._start()  # a small body: its PUT goes whole, now
        try:
            await task
            primary, replica = await asyncio.gather(
                self.jobs.sides.head(PRIMARY, self.bucket, self.key),
                self.jobs.sides.head(REPLICA, self.bucket, self.key),
            )
        except Cut as e:
            return f"tee cut: {e}"
        except (BackendError, SideFailed) as e:
            return f"tee failed: {e}"
        if primary is None or plan(OBJECT, primary, replica) != Done("equal"):
            return "the key changed meanwhile"
        return ""

    async def drain(self, within: float) -> None:
        """Wait until the replica took what it was given (`within` seconds at most, and its
        idleTimeout): the client's connection is read on after. A replica that took nothing
        in that time, or failed, is cut off from the tee."""
        if self.stopped or self.released:
            return
        if self._queued <= SLACK if self._outlet is None else self._waiting <= _PAUSED_ABOVE:
            return  # nothing to wait for (the common case: no timer for it)
        seconds = min(within, self.jobs.replica.idle_timeout)
        try:
            async with asyncio.timeout(seconds):
                if self._outlet is None and self._queued > SLACK:
                    await self._started.wait()
                if self._outlet is not None and not self.stopped:
                    await self._outlet.drained()
        except TimeoutError:
            self.cut(f"it took nothing for {seconds:g}s")
        except BackendError as e:
            self.cut(str(e))

    def _send(self, data: bytes) -> None:
        if self._outlet is None:
            self._queue.append(data)
            self._queued += len(data)
            waiting = self._queued
        else:
            try:
                waiting = self._waiting = self._outlet.write(data)
            except BackendError as e:
                self.cut(str(e))
                return
        if waiting - len(data) > self.budget:  # that far behind before this piece came
            self.cut(f"it fell {self.budget // MIB} MiB behind the client")

    def _start(self) -> asyncio.Future[str]:
        self.task = asyncio.ensure_future(self._put())
        self.task.add_done_callback(self._ended)
        return self.task

    def _ended(self, task: asyncio.Future[str]) -> None:
        """A PUT that failed before its end (no HEAD, no connection) cuts the tee at once: the
        client does not wait for it. Its failure is read by `landed`, or by nobody."""
        with contextlib.suppress(asyncio.CancelledError):
            if (error := task.exception()) is not None:
                self.cut(str(error) or type(error).__name__)

    async def _put(self) -> str:
        body: bytes | Pushed = Pushed(self._push, self.length)
        if self.length <= WHOLE:
            body = b"".join([*self._queue, self._last])
            await asyncio.sleep(0)  # (started in an eager task) after the client's answer
        now = await self.jobs.sides.head(REPLICA, self.bucket, self.key)  # for the condition
        headers = [*self.headers, *landing_on(now)]
        path = sigv4.key_path(self.key)
        async with self.jobs.sides.client.request(
            self.jobs.replica, "PUT", self.bucket, path, headers=headers, body=body
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        if reply.status != 200:
            raise Cut(f"{self.name} answered {reply.status} {error_code(answer) or ''}".strip())
        return reply.header("etag") or ""

    async def _push(self, outlet: Outlet) -> None:
        """The PUT's head is sent: the bytes fed so far, then each as it is fed; the last one
        once released. Raises Cut (the connection is then closed before the body's end)."""
        if self.stopped:
            raise Cut(self.stopped)
        self._outlet = outlet
        self._started.set()
        queued, self._queue, self._queued = self._queue, deque(), 0
        for piece in queued:
            self._send(piece)
        try:
            await asyncio.wait_for(self._decided.wait(), IDLE)
        except TimeoutError:
            self.cut(f"nothing happened for {IDLE:g}s")
        if self.stopped:
            raise Cut(self.stopped)
        outlet.write(self._last)


@dataclass
class Tees:
    """One PutObject's tees, by replica: the exchange's one `uploads.BodyTap`."""

    each: dict[str, ReplicaTee]

    def feed(self, data: bytes) -> None:
        for tee in self.each.values():
            tee.feed(data)

    def end(self) -> None:
        for tee in self.each.values():
            tee.end()

    def cut(self) -> None:
        for tee in self.each.values():
            tee.cut()

    async def drain(self, within: float) -> None:
        """Each tee drained, at once (each bounded by `within`)."""
        if len(self.each) == 1:
            await next(iter(self.each.values())).drain(within)
        else:
            await asyncio.gather(*(tee.drain(within) for tee in self.each.values()))


def tees_for(replicas: Mapping[str, ReplicaJobs], request: Plan, key: str) -> Tees | None:
    """Tees for a PutObject to every replica that answers, when its object can be teed: its
    length known ahead (not empty, one PUT's worth), not encrypted with the client's key."""
    body, bucket = request.body, request.bucket
    if not isinstance(body, BodyPlan) or bucket is None:
        return None
    headers = [(name.lower(), value) for name, value in request.headers]
    lookup = dict(headers)
    length = body.decoded_length if body.chunked else None
    if length is None and lookup.get("content-length", "").isdigit():
        length = int(lookup["content-length"])
    if not length or length > _SINGLE_PUT_MOST or any(h in lookup for h in _NOT_TEED):
        return None
    up = [jobs for jobs in replicas.values() if jobs.liveness.up and not jobs.stopped]
    if not up:
        return None
    described_ = [(k, v) for k, v in described(headers) if k not in _OURS]
    tagging = [("x-amz-tagging", lookup["x-amz-tagging"])] if "x-amz-tagging" in lookup else []
    each = {}
    for jobs in up:
        sent = [*described_, (REPLICA_MARK, jobs.sides.primary.name), *tagging]
        each[jobs.replica.name] = ReplicaTee(jobs, bucket, key, length, sent)
    return Tees(each)
