"""The chaos run's faults: SeaweedFS servers killed (SIGKILL) at seeded random moments and
started again with their data (tests/support/restartable.py), one injector per group of
servers (the primary; the replicas), so that the primary and a replica may be down at once."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from addon.local.seaweedfs import SeaweedServer
from tests.support.restartable import kill, restart

GAP = (2.0, 5.0)  # seconds between a server's return and the group's next kill
PRIMARY_GAP = (3.0, 8.0)  # the primary's: writes get 503 while it is down, so less often
DOWN = (0.5, 2.5)  # seconds a killed server stays down before it is started again
OUTAGE_MARGIN = 5.0  # seconds a proxy may take to use a server again once it answers
RESTART_SECONDS = 3.5  # about what a quick restart takes here, to end faults before the run


@dataclass(frozen=True)
class Fault:
    """One kill: of which server, and when (run clock) it was killed, started again, and
    answered S3 again."""

    server: str
    killed: float
    restarted: float
    answered: float


@dataclass
class Injector:
    """Kills one of `servers` (chosen by `rng`) after a pause (`gaps`), leaves it down for DOWN
    seconds, starts it again and waits until it answers; again, until no fault fits before
    `until`.
    Started as a thread by `start`; `join` ends it and says what went wrong in it."""

    servers: Sequence[SeaweedServer]
    rng: random.Random
    clock: Callable[[], float]
    until: float
    gaps: tuple[float, float] = GAP
    faults: list[Fault] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    problem: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> Injector:
        self.thread = threading.Thread(target=self._run, name="chaos-faults")
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                gap, down = self.rng.uniform(*self.gaps), self.rng.uniform(*DOWN)
                server = self.rng.choice(list(self.servers))
                if self.clock() + gap + down + RESTART_SECONDS > self.until:
                    return
                if self.stopping.wait(gap):
                    return
                killed = self.clock()
                kill(server)
                self.stopping.wait(down)  # stopping or not, it is started again
                restarted = self.clock()
                restart(server)
                self.faults.append(Fault(server.name, killed, restarted, self.clock()))
        except BaseException as e:
            self.problem = e

    def join(self) -> list[Fault]:
        """The faults injected, once the thread ended (every server it killed answering again)."""
        self.stopping.set()
        assert self.thread is not None
        self.thread.join()
        if self.problem is not None:
            raise self.problem
        return self.faults


def outages(faults: Sequence[Fault], server: str) -> list[tuple[float, float]]:
    """When `server` was down (killed, until it answered again)."""
    return [(f.killed, f.answered) for f in faults if f.server == server]


def during_outage(faults: Sequence[Fault], server: str, start: float, end: float) -> bool:
    """[start, end] overlaps a time `server` was down or marked down: killed, until
    OUTAGE_MARGIN after it answered again (the proxy's probes find it back within seconds)."""
    return any(
        start < answered + OUTAGE_MARGIN and end > killed
        for killed, answered in outages(faults, server)
    )
