"""Which backends are up, as one proxy process sees them: down-marking and the probe that ends it.

Fed by every attempt: each backend a request's journey tries (`journey`), and the proxy's own
requests (`backend_client`). An answer, whatever its status, is a sign of life; a 5xx is an
answer too (AWS answers 503 SlowDown under load), so it marks nothing down. A backend that could
not be reached, did not answer in time or answered garbage has failed: it is marked down after
FAILURES_TO_DOWN failures in a row, or at once when its connection failed at once (refused:
nothing listens there). While it is down, requests skip it without trying it (`Outlook`), and
`Prober` asks it a ListBuckets every PROBE_EVERY seconds; the first answer marks it up again.
Each change of state is logged once, and told to whoever listens (metrics).

The state is in `Health`, which does no I/O (its clock is given), so that its transitions are
tested as a table; `Prober` does the probing, for the background loop and for readiness alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from addon.config.settings import Backend
from addon.upstream.backend_client import UNREACHABLE, BackendClient, BackendError

log = logging.getLogger(__name__)
FAILURES_TO_DOWN = 3
PROBE_EVERY = 2.0  # seconds between two probes of a backend that is down
PROBE_TIMEOUT = 3.0  # a probe that has no answer by then failed
PROBE_QUERY = "max-buckets=1"  # one bucket is enough to know (S3 honours it; others list all)
MAX_LISTING = 4 * 1024 * 1024  # a ListBuckets answer: 10,000 buckets (AWS's most) are under 3 MB


class Reporter(Protocol):
    """Where attempts are reported: `Health`, or nothing."""

    def answered(self, name: str) -> None: ...
    def failed(self, name: str, reason: str, at_once: bool = False) -> None: ...


@dataclass
class _State:
    up: bool = True
    failures: int = 0  # in a row
    failing_since: float | None = None  # the first failure of the current streak
    down_since: float | None = None
    back_since: float | None = None  # when it was last marked up again after being down


@dataclass(frozen=True)
class Outlook:
    """What one request counts on, fixed when it starts: the backends marked down, and the
    replicas certified in sync that may answer reads the primary cannot (`failover`, in config
    order, up; empty when `readFailover` is off)."""

    down: frozenset[str] = frozenset()
    failover: tuple[Backend, ...] = ()
    read_failover: bool = True

    def is_down(self, backend: Backend) -> bool:
        return backend.name in self.down


Listener = Callable[[str, bool], None]  # (backend name, up)


class Health:
    """Up or down per backend, from the attempts reported; no I/O. `clock` is wall time
    (seconds): the times it keeps are compared with certificates' (`addon.replication`)."""

    def __init__(self, names: Iterable[str], clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._states = {name: _State() for name in names}
        self.listeners: list[Listener] = []

    def is_up(self, name: str) -> bool:
        state = self._states.get(name)
        return state is None or state.up

    def down(self) -> frozenset[str]:
        """The backends marked down now."""
        return frozenset(name for name, s in self._states.items() if not s.up)

    def failing_since(self, name: str) -> float | None:
        """When the backend's current streak of failures began (it is down, or has failed
        since its last answer); None while it answers."""
        state = self._states.get(name)
        return state.failing_since if state is not None else None

    def back_since(self, name: str) -> float | None:
        """When the backend was last marked up again after being down (None: never down)."""
        state = self._states.get(name)
        return state.back_since if state is not None else None

    # --- what happened ---------------------------------------------------------------------------

    def answered(self, name: str) -> None:
        """The backend answered (any status): it is up."""
        state = self._states.get(name)
        if state is None:
            return
        state.failures, state.failing_since = 0, None
        if state.up:
            return
        now = self.clock()
        state.up, state.back_since = True, now
        log.info("backend %s is up again after %.0fs", name, now - (state.down_since or now))
        state.down_since = None
        self._tell(name, True)

    def failed(self, name: str, reason: str, at_once: bool = False) -> None:
        """The backend gave no usable answer (`reason`: unreachable, timed out, broken, with
        what happened); `at_once`: its connection failed at once (refused), it is down now."""
        state = self._states.get(name)
        if state is None:
            return
        now = self.clock()
        state.failures += 1
        if state.failing_since is None:
            state.failing_since = now
        if not state.up or (state.failures < FAILURES_TO_DOWN and not at_once):
            return
        state.up, state.down_since = False, now
        count = "at once" if at_once else f"{state.failures} failures"
        log.warning(
            "backend %s is down: %s (%s); requests skip it, probing every %gs",
            name,
            reason,
            count,
            PROBE_EVERY,
        )
        self._tell(name, False)

    def _tell(self, name: str, up: bool) -> None:
        for listener in self.listeners:
            listener(name, up)


@dataclass
class Probe:
    """One probe's outcome: `status` the backend answered (None: none), `problem` if any."""

    status: int | None
    ms: int
    problem: str = ""

    @property
    def ok(self) -> bool:
        """It answered its ListBuckets with 200 (readiness wants that, not just an answer)."""
        return self.status == 200 and not self.problem


@dataclass
class Prober:
    """Probes backends with a signed ListBuckets (`max-buckets=1`, PROBE_TIMEOUT at most): the
    ones marked down, every PROBE_EVERY seconds in the background (`run`), and any backend when
    readiness asks (`probe`): one prober, so one rule for "up". What a probe finds reaches
    `health` like any other attempt (the proxy's client reports it), so a probe that gets an
    answer marks its backend up."""

    health: Health
    backends: Sequence[Backend]
    client: BackendClient
    _running: set[asyncio.Task] = field(default_factory=set)

    async def probe(self, backend: Backend) -> Probe:
        started = time.monotonic()
        status: int | None = None
        problem = ""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                async with self.client.request(backend, "GET", None, query=PROBE_QUERY) as reply:
                    await reply.read(MAX_LISTING)
                status = reply.status
        except TimeoutError:  # cut short here, so the client could not report it
            problem = f"no answer within {PROBE_TIMEOUT:g}s"
            self.health.failed(backend.name, f"timed out: {problem}")
        except BackendError as e:  # reported by the client
            problem = f"unreachable: {e}" if e.kind == UNREACHABLE else f"{e.kind}: {e}"
        if status is not None and status != 200:
            problem = f"ListBuckets answered {status}"
        return Probe(status, round((time.monotonic() - started) * 1000), problem)

    async def run(self) -> None:
        """Probe every backend marked down every PROBE_EVERY seconds, without waiting for the
        last probe: one that hangs on a backend still starting must not delay the next, which
        may be the first it answers (so at most two run at once per backend)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PROBE_EVERY)
            for backend in self.backends:
                if not self.health.is_up(backend.name):
                    task = loop.create_task(self.probe(backend))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)

    def close(self) -> None:
        for task in list(self._running):
            task.cancel()
