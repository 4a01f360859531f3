"""The tee's pacing and bounds (`addon.replication.tee.ReplicaTee`), without a network: its PUT's
body goes to an `Outlet` of the test's own, whose backlog and draining the test decides (the PUT
itself, the landing and the look at both sides are end to end: tests/e2e/replication/
test_tee.py). What is checked: the last byte waits for the release; `drain` waits for the
replica's connection and cuts a replica that takes nothing in time; before the PUT is under way
SLACK bytes may wait, more wait for it; the budget counts what was behind before a piece."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from addon.replication import tee
from addon.replication.plan import Head
from addon.replication.repair import REPLICA
from addon.upstream.request_bodies import Pushed

LENGTH = tee.WHOLE + 10  # streamed (a smaller body is sent whole once released)


class Outlet:
    """A replica's connection as the tee sees it: what it was given, its backlog (`waiting`,
    set by the test), and a drain that returns once `room` is set."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.waiting = 0
        self.room = asyncio.Event()
        self.room.set()

    def write(self, data: bytes) -> int:
        self.sent += data
        return self.waiting + len(data)

    async def drained(self) -> None:
        await self.room.wait()


class Client:
    """Starts the tee's PUT when the test says (`go`), hands its body the outlet, answers 200."""

    def __init__(self, outlet: Outlet) -> None:
        self.outlet = outlet
        self.go = asyncio.Event()
        self.done = asyncio.Event()
        self.whole: list[bytes] = []  # bodies sent whole
        self.replica: Head | None = None  # what a HEAD of the replica finds
        self.headers: list[tuple[str, str]] = []  # the PUT's

    async def head(self, side: str, bucket: str, key: str) -> Head | None:
        assert (side, bucket, key) == (REPLICA, "b", "k")
        return self.replica

    @contextlib.asynccontextmanager
    async def request(
        self, *_: Any, body: Pushed | bytes, headers: list[tuple[str, str]], **__: Any
    ) -> AsyncIterator[Any]:
        self.headers = headers
        await self.go.wait()
        if isinstance(body, bytes):
            self.whole.append(body)
        else:
            await body.push(self.outlet)
        self.done.set()

        async def read(_: int) -> bytes:
            return b""

        yield SimpleNamespace(status=200, read=read, header=lambda _: '"etag"')


def _tee(started: bool = True, length: int = LENGTH) -> tuple[tee.ReplicaTee, Client]:
    client = Client(Outlet())
    if started:
        client.go.set()
    replica = SimpleNamespace(name="dr", idle_timeout=30.0, response_timeout=30.0)
    jobs = SimpleNamespace(replica=replica, sides=SimpleNamespace(client=client, head=client.head))
    return tee.ReplicaTee(jobs, "b", "k", length, []), client  # type: ignore[arg-type]


def _run(test) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


def test_the_last_byte_waits_for_the_release():
    async def test() -> None:
        one, client = _tee()
        await asyncio.sleep(0)
        body = bytes(range(256)) * (LENGTH // 256) + bytes(LENGTH % 256)
        one.feed(body)
        one.end()
        await asyncio.sleep(0.01)
        assert bytes(client.outlet.sent) == body[:-1] and not client.done.is_set()
        one.released = True
        one._decided.set()
        await asyncio.wait_for(client.done.wait(), 1)
        assert bytes(client.outlet.sent) == body and not one.stopped and not client.whole

    _run(test)


def test_the_put_is_conditional_on_the_replica_state_looked_at_before_it():
    """A PUT that lands late (the replica hung with it) never overwrites a write since."""

    async def test(replica: Head | None) -> list[tuple[str, str]]:
        one, client = _tee(length=10)
        client.replica = replica
        one.feed(b"0123456789")
        one.end()
        one.released = True
        one._decided.set()
        await (one.task or one._start())
        return [(k, v) for k, v in client.headers if k.startswith("if-")]

    absent = asyncio.run(test(None))
    held = asyncio.run(test(Head('"9b2cf535f27731c974343645a3985328"', 3)))
    assert absent == [("if-none-match", "*")]
    assert held == [("if-match", '"9b2cf535f27731c974343645a3985328"')]


def test_a_put_whose_look_at_the_replica_fails_cuts_the_tee_at_once():
    async def test() -> None:
        one, client = _tee(length=2 * tee.SLACK)

        async def down(*_: Any) -> None:
            raise tee.SideFailed(REPLICA, "connect", "refused")

        one.jobs.sides.head = down  # type: ignore[attr-defined]
        one.feed(bytes(tee.SLACK + 10))
        await asyncio.wait_for(one.drain(30), 1)  # not the drain's 30 s
        assert "refused" in one.stopped and not client.outlet.sent

    _run(test)


async def _paused() -> tuple[tee.ReplicaTee, Client]:
    """A streamed tee fed 4 bytes, its replica's connection paused (its backlog beyond asyncio's
    high-water mark) until the test sets `room`."""
    one, client = _tee()
    await asyncio.sleep(0)
    client.outlet.room.clear()
    client.outlet.waiting = tee.MIB
    one.feed(b"0123")
    return one, client


def test_drain_waits_for_the_replicas_connection():
    async def test() -> None:
        one, client = await _paused()
        draining = asyncio.ensure_future(one.drain(within=5))
        await asyncio.sleep(0.01)
        assert not draining.done()  # the client is not read meanwhile
        client.outlet.room.set()
        await draining
        assert not one.stopped
        one.cut()

    _run(test)


def test_no_drain_while_the_replicas_connection_is_not_paused():
    async def test() -> None:
        one, client = _tee()
        await asyncio.sleep(0)
        client.outlet.room.clear()  # would never return
        client.outlet.waiting = 1000
        one.feed(b"0123")
        await one.drain(within=5)
        assert not one.stopped
        one.cut()

    _run(test)


def test_a_replica_that_takes_nothing_in_time_is_cut():
    async def test() -> None:
        one, _ = await _paused()
        await one.drain(within=0.05)
        assert one.stopped == "it took nothing for 0.05s"
        await one.drain(within=5)  # a cut tee never waits again

    _run(test)


def test_before_the_put_starts_slack_bytes_wait_more_wait_for_it():
    async def test() -> None:
        one, client = _tee(started=False)
        one.length = 4 * tee.SLACK
        one.feed(b"x" * tee.SLACK)
        await one.drain(within=0.05)  # within the slack: no wait, no cut
        assert not one.stopped
        one.feed(b"x")
        draining = asyncio.ensure_future(one.drain(within=5))
        await asyncio.sleep(0.01)
        assert not draining.done()
        client.go.set()
        await draining
        assert not one.stopped and len(client.outlet.sent) == tee.SLACK + 1
        one.cut()

    _run(test)


def test_a_put_that_never_starts_is_cut_once_beyond_the_slack():
    async def test() -> None:
        one, _ = _tee(started=False)
        one.length = 4 * tee.SLACK
        one.feed(b"x" * (tee.SLACK + 1))
        await one.drain(within=0.05)
        assert one.stopped.startswith("it took nothing")

    _run(test)


def test_the_budget_counts_what_was_behind_before_a_piece():
    async def test() -> None:
        one, client = _tee()
        one.length = 4 * tee.BUDGET
        await asyncio.sleep(0)
        one.feed(b"x" * (2 * tee.BUDGET))  # one large piece (a signed chunk): not behind yet
        assert not one.stopped
        client.outlet.waiting = tee.BUDGET + 1  # the replica did not take it
        one.feed(b"x")
        assert one.stopped == f"it fell {tee.BUDGET // tee.MIB} MiB behind the client"

    _run(test)


def test_a_body_longer_or_shorter_than_announced_is_cut():
    async def test() -> None:
        longer, _ = _tee()
        longer.feed(b"x" * (LENGTH + 1))
        assert longer.stopped == "the body is longer than announced"
        shorter, _ = _tee()
        shorter.feed(b"x" * 3)
        shorter.end()
        assert shorter.stopped == f"the body ended after 3 of {LENGTH} bytes"

    _run(test)


def test_a_small_body_is_put_whole_once_released_and_never_before():
    async def test() -> None:
        one, client = _tee(length=5)
        one.feed(b"sm")
        one.feed(b"all")
        one.end()
        await one.drain(within=5)
        await asyncio.sleep(0.01)
        assert one.task is None and not client.done.is_set()  # no PUT while the primary works
        one.released = True
        await one._start()
        assert client.whole == [b"small"] and not client.outlet.sent

    _run(test)


def test_a_small_body_cut_before_its_release_is_never_sent():
    async def test() -> None:
        one, client = _tee(length=5)
        one.feed(b"small")
        one.cut("the primary refused it")
        assert await one.landed() == "tee cut: the primary refused it"
        assert one.task is None and not client.whole

    _run(test)


def test_an_async_tee_is_released_in_the_response_hook_and_its_put_sent_after():
    """mitmproxy runs tasks eagerly: `ReplicaJobs.follow` in the response hook lets the tee's last
    byte go at once (the exchange cuts its tees when the flow is done, right after), while the
    replica's PUT is written only after the hook returned (the client's answer first)."""
    from addon.replication.plan import Head
    from addon.replication.repair import Job
    from addon.replication.replicator import STREAMED, ReplicaJobs

    async def test() -> None:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        one, client = _tee(length=5)
        one.feed(b"small")
        one.end()
        repaired: list[str] = []

        async def head(*_: Any) -> Head:
            return Head('"etag"', 5)

        one.jobs.sides.head = head  # both sides as the look after the landing finds them
        sides = SimpleNamespace(replica=one.jobs.replica)
        liveness = SimpleNamespace(listeners=[])
        observer = SimpleNamespace(repaired=lambda _, action: repaired.append(action))
        jobs = ReplicaJobs(sides, liveness, None, observer)  # type: ignore[arg-type]
        jobs.follow(Job("object", "b", "k"), one.landed())  # the response hook ...
        assert not client.whole  # ... sends nothing yet
        one.cut()  # the flow is done
        await asyncio.sleep(0.05)
        assert client.whole == [b"small"] and repaired == [STREAMED]

    _run(test)
