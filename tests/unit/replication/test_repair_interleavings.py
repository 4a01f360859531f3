"""addon.replication.repair.make_equal against every interleaving of its steps with other jobs
and a client's writes and deletes of the same key: the replica ends equal to the primary, a
landing never replaces a newer version with an older one, and a delete is never undone.

The two sides are in memory (`World`), honouring the conditions as the servers do (If-Match,
If-None-Match: *); each request is a step, and a scheduler decides which waiting step goes next.
Every schedule is enumerated depth-first (a model checker in miniature): the job code is the
real one, only the servers are not.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from addon.replication.plan import ABSENT, OBJECT, Head
from addon.replication.repair import (
    PRIMARY,
    REPLICA,
    Changed,
    Conflict,
    Job,
    Unsettled,
    make_equal,
)

JOB = Job(OBJECT, "b", "k")


@dataclass(frozen=True)
class Version:
    n: int  # primary writes are numbered in the order they happen
    marked: bool = False

    @property
    def etag(self) -> str:
        return f'"v{self.n}"'


Step = tuple[str, bool]  # the side a request goes to, and whether it writes there
Chooser = Callable[[dict[str, Step]], str]  # which of the waiting steps goes next


class Scheduler:
    """Lets one waiting step go at a time, the one `choose` names, until every task ended."""

    def __init__(self, choose: Chooser) -> None:
        self.choose = choose
        self.waiting: dict[str, tuple[asyncio.Future[None], Step]] = {}
        self.tasks: list[asyncio.Task] = []

    async def step(self, name: str, store: str, writes: bool) -> None:
        """Wait for this step's turn: `store` is the side it reads or `writes`."""
        assert name not in self.waiting
        future = asyncio.get_running_loop().create_future()
        self.waiting[name] = (future, (store, writes))
        await future

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.ensure_future(coroutine))

    async def _settle(self) -> None:
        """Until everything runs into a step or ends: nothing is ready to run (in memory, no
        I/O and no timers can wake anything up later)."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)
        while loop._ready:  # type: ignore[attr-defined]  # asyncio's run queue
            await asyncio.sleep(0)

    async def run(self) -> None:
        await self._settle()
        while self.waiting:
            name = self.choose({n: step for n, (_, step) in self.waiting.items()})
            self.waiting.pop(name)[0].set_result(None)
            await self._settle()
        for task in self.tasks:
            task.result()  # a failure in a job or a client fails the test


@dataclass
class World:
    scheduler: Scheduler
    primary: Version | None
    replica: Version | None
    writes: int = 1
    unsettled: list[str] = field(default_factory=list)

    def land(self, version: Version) -> None:
        if self.replica is not None:
            assert version.n >= self.replica.n, f"v{version.n} landed over v{self.replica.n}"
        self.replica = version

    def job(self, name: str) -> None:
        async def run() -> None:
            try:
                await make_equal(MemorySides(self, name), JOB)
            except Unsettled:
                self.unsettled.append(name)  # to the outbox: drained at the end

        self.scheduler.spawn(run())

    async def write(self, who: str) -> None:
        await self.scheduler.step(f"{who} writes the primary", PRIMARY, True)
        self.writes += 1
        self.primary = Version(self.writes)
        self.job(f"job after {who}'s write")

    async def delete(self, who: str) -> None:
        """A client's delete: the primary, then the replica before the client hears, then a
        job that looks again (a write may have come in between)."""
        await self.scheduler.step(f"{who} deletes on the primary", PRIMARY, True)
        self.primary = None
        await self.scheduler.step(f"{who} deletes on the replica", REPLICA, True)
        self.replica = None
        self.job(f"job after {who}'s delete")


@dataclass
class MemorySides:
    world: World
    name: str
    steps: int = 0

    async def _step(self, what: str, store: str, writes: bool = False) -> None:
        self.steps += 1  # a step's name is unique over the job's life
        await self.world.scheduler.step(f"{self.name} #{self.steps}: {what}", store, writes)

    async def head(self, side: str, bucket: str, key: str) -> Head | None:
        await self._step(f"HEAD {side}", side)
        found = self.world.primary if side == PRIMARY else self.world.replica
        if found is None:
            return None
        source = found.etag if found.marked else None
        return Head(found.etag, 1, source_etag=source, marked=found.marked)

    async def copy(self, bucket: str, key: str, primary: Head, condition) -> str:
        await self._step("GET the primary If-Match", PRIMARY)
        now = self.world.primary
        if now is None or now.etag != primary.etag:
            raise Changed()
        if condition == ABSENT:  # the last look before a copy appears (BackendSides.copy)
            await self._step("HEAD the primary before landing", PRIMARY)
            if self.world.primary is None or self.world.primary.etag != primary.etag:
                raise Conflict()
        await self._step("land on the replica", REPLICA, writes=True)
        held = self.world.replica
        if condition == ABSENT:
            holds = held is None
        else:
            holds = held is not None and held.etag == dict(condition)["if-match"]
        if not holds:
            raise Conflict()
        self.world.land(Version(now.n, marked=True))
        return now.etag

    async def delete(self, bucket: str, key: str, etag: str) -> None:
        await self._step("DELETE on the replica If-Match", REPLICA, writes=True)
        if self.world.replica is None or self.world.replica.etag != etag:
            raise Conflict()
        self.world.replica = None

    async def copy_tags(self, bucket: str, key: str):
        raise AssertionError("no tags here")

    async def tags(self, bucket: str, key: str):
        raise AssertionError("no tags here")

    async def create_bucket(self, bucket: str) -> None:
        raise AssertionError("the bucket is there")


Scenario = Callable[[World], None]


def _clients(*plays: Callable[[World], Coroutine[Any, Any, None]]) -> Scenario:
    def start(world: World) -> None:
        for play in plays:
            world.scheduler.spawn(play(world))

    return start


async def _write_then_delete(world: World) -> None:
    await world.write("A")
    await world.delete("A")


async def _delete_then_write(world: World) -> None:
    await world.delete("A")
    await world.write("A")


# Each scenario with how many of its schedules are run: None for every one (up to the order of
# requests that commute), else that many drawn at random (the rest run for minutes).
SCENARIOS: dict[str, tuple[Scenario, int | None]] = {
    "a write while the first job runs": (_clients(lambda w: w.write("A")), None),
    "a delete while the first job runs": (_clients(lambda w: w.delete("A")), None),
    "a write, then a delete": (_clients(_write_then_delete), 200),
    "a delete, then a write": (_clients(_delete_then_write), 200),
    "two clients: a write and a delete": (
        _clients(lambda w: w.write("A"), lambda w: w.delete("B")),
        200,
    ),
    "two clients writing": (_clients(lambda w: w.write("A"), lambda w: w.write("B")), 200),
}


def _run(scenario: Scenario, replica: Version | None, choose: Chooser) -> World:
    async def main() -> World:
        world = World(Scheduler(choose), primary=Version(1), replica=replica)
        world.job("job after the first write")
        scenario(world)
        try:
            await world.scheduler.run()
        finally:
            for task in world.scheduler.tasks:
                task.cancel()
            await asyncio.gather(*world.scheduler.tasks, return_exceptions=True)
        return world

    return LOOP.run_until_complete(main())


LOOP = asyncio.new_event_loop()  # one for every run: a loop per run costs more than the run


def _independent(a: Step, b: Step) -> bool:
    """Two requests commute: to different sides, or both reads."""
    return a[0] != b[0] or not (a[1] or b[1])


class _Redundant(Exception):
    """Every step that may go here sleeps: every way on was run on another branch."""


@dataclass
class _Branch:
    """One run of the depth-first search: it follows `prefix`, then takes the first step it
    may at each point, leaving the others as branches to run later (with their sleep sets)."""

    prefix: list[str]
    sleeping_at_end: dict[str, Step]
    branches: list[tuple[list[str], dict[str, Step]]]
    taken: list[str] = field(default_factory=list)
    sleeping: dict[str, Step] = field(default_factory=dict)

    def __call__(self, enabled: dict[str, Step]) -> str:
        if len(self.taken) < len(self.prefix):
            name = self.prefix[len(self.taken)]
            if len(self.taken) + 1 == len(self.prefix):
                self.sleeping = dict(self.sleeping_at_end)
        else:
            awake = [n for n in sorted(enabled) if n not in self.sleeping]
            if not awake:
                raise _Redundant()
            name, done = awake[0], {awake[0]: enabled[awake[0]]}
            for other in awake[1:]:
                asleep = {**self.sleeping, **done}
                asleep = {n: s for n, s in asleep.items() if _independent(s, enabled[other])}
                self.branches.append(([*self.taken, other], asleep))
                done[other] = enabled[other]
            self.sleeping = {
                n: s for n, s in self.sleeping.items() if _independent(s, enabled[name])
            }
        self.taken.append(name)
        return name


def _every_schedule(scenario: Scenario, replica: Version | None) -> Iterator[tuple[World, list]]:
    """Every way the steps can interleave, up to the order of requests that commute: depth
    first with sleep sets (a step that commutes with the one taken is not taken first again on
    that branch)."""
    branches: list[tuple[list[str], dict[str, Step]]] = [([], {})]
    while branches:
        branch = _Branch(*branches.pop(), branches)
        try:
            world = _run(scenario, replica, branch)
        except _Redundant:
            continue
        yield world, branch.taken


@dataclass
class _AtRandom:
    rng: random.Random
    taken: list[str] = field(default_factory=list)

    def __call__(self, enabled: dict[str, Step]) -> str:
        self.taken.append(self.rng.choice(sorted(enabled)))
        return self.taken[-1]


def _random_schedules(scenario: Scenario, replica: Version | None, count: int):
    """`count` schedules drawn at random (seeded: the same ones every run)."""
    rng = random.Random(21)
    for _ in range(count):
        chooser = _AtRandom(rng)
        yield _run(scenario, replica, chooser), chooser.taken


@pytest.mark.parametrize("replica", [None, Version(0, marked=True)], ids=["empty", "older"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_interleaving_ends_with_the_replica_equal_to_the_primary(name, replica):
    """And no landing replaced a newer version (World.land); a job still racing after its runs
    goes to the outbox, whose drain runs it once more, alone."""
    scenario, sampled = SCENARIOS[name]
    if sampled is None:
        schedules = _every_schedule(scenario, replica)
    else:
        schedules = _random_schedules(scenario, replica, sampled)
    count = 0
    for world, schedule in schedules:
        count += 1
        if world.unsettled:
            LOOP.run_until_complete(_drain(world))
        primary, held = world.primary, world.replica
        assert (held.n if held else None) == (primary.n if primary else None), (
            f"primary {primary}, replica {held} after: " + "; ".join(schedule)
        )
    assert count > 10  # the enumeration did enumerate


async def _drain(world: World) -> None:
    world.scheduler = Scheduler(lambda enabled: min(enabled))
    world.unsettled.clear()
    world.job("the outbox drain")
    await world.scheduler.run()
