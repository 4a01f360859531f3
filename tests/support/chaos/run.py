"""The chaos run of issue 21, shared by the CI test (tests/e2e/replication/test_chaos.py, 15 s)
and the benchmark (`python -m tests.benchmark.chaos`, minutes):

1. the bucket is made through the proxy and both replicas certified in sync (readiness "ready");
2. `clients` clients (load.py) for `seconds` while the primary and a replica are killed and
   started again at seeded random moments (faults.py);
3. the faults over, until repairs settle: readiness says "ready" READY_IN_A_ROW times in a row
   (each ask may reach another worker) and no repair is pending, within `settle_timeout`;
4. the audit, out of band: what each backend holds, read directly; the primary's every key
   must be a possible final state of the history (history.py), every replica equal to the
   primary (asked again for up to EQUAL_WAIT seconds after settling, in case readiness said
   ready early: that wait is reported), and every read of the history must obey the read rules.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from random import Random

from tests.support.chaos.faults import PRIMARY_GAP, Fault, Injector
from tests.support.chaos.gateway import Deployment, held, readiness, watched_metrics
from tests.support.chaos.history import Findings, Op, audit_history, check_final
from tests.support.chaos.load import Load, key_space, run_clients

READY_IN_A_ROW = 4
PREPARE_TIMEOUT = 60.0  # seconds for the bucket to reach the replicas and both to be certified
EQUAL_WAIT = 15.0


@dataclass(frozen=True)
class Settings:
    seconds: float = 15.0
    clients: int = 32
    keys: int = 40
    seed: int | None = None  # None: a new one, from the system's randomness
    workers: int = 2
    settle_timeout: float = 60.0


@dataclass
class Result:
    seed: int
    settings: Settings
    ops: list[Op]
    faults: list[Fault]
    findings: Findings
    ran_for: float = 0.0  # seconds the clients ran
    faults_ended: float = 0.0  # run clock: the clients stopped and every server answered
    settled_after: float | None = None  # seconds from faults_ended to settled; None: never
    equal_after: float | None = None  # seconds from settled until every replica was equal
    last_readiness: dict = field(default_factory=dict)
    settling: list[tuple[float, str]] = field(default_factory=list)  # readiness while settling
    metrics: dict[str, float] = field(default_factory=dict)
    held: dict[str, dict[str, str]] = field(default_factory=dict)  # by backend, the audit's

    @property
    def violations(self) -> list[str]:
        return self.findings.violations


def _wait_until(check, timeout: float, every: float = 0.25) -> float | None:
    """Seconds from now until the start of the first `check()` that was true (0: the first
    was), None if none was within `timeout`."""
    began = time.monotonic()
    while True:
        asked = time.monotonic()
        if check():
            return asked - began
        if asked - began > timeout:
            return None
        time.sleep(every)


def summary(ready: dict) -> str:
    """One readiness answer in a line: the status, and what each backend not well says."""
    sick = []
    for b in ready.get("backends", []):
        shown = {k: b[k] for k in ("up", "certified", "behind", "pending") if k in b}
        if not b.get("up") or b.get("behind") or b.get("pending"):
            sick.append(f"{b.get('name')} {shown}")
    return " ".join([str(ready.get("status")), *sick])


def _settled(deployment: Deployment, seen: list[tuple[float, str]] | None = None) -> bool:
    """READY_IN_A_ROW answers "ready" with nothing pending; each change of what readiness says
    is added to `seen` (time.monotonic(), summary)."""
    for _ in range(READY_IN_A_ROW):
        ready = readiness(deployment.proxy)
        if seen is not None and (not seen or seen[-1][1] != summary(ready)):
            seen.append((time.monotonic(), summary(ready)))
        replicas = [b for b in ready.get("backends", []) if b.get("role") == "replica"]
        if ready.get("status") != "ready" or any(b.get("pending") for b in replicas):
            return False
    return True


def prepare(deployment: Deployment, bucket: str) -> None:
    deployment.proxy.client().create_bucket(Bucket=bucket)
    waited = _wait_until(lambda: _settled(deployment), PREPARE_TIMEOUT)
    assert waited is not None, f"not ready before the run: {readiness(deployment.proxy)}"


def chaos(deployment: Deployment, settings: Settings) -> Result:
    """The whole run on `deployment`; its Result (the caller judges it: `violations`)."""
    seed = settings.seed if settings.seed is not None else random.SystemRandom().getrandbits(32)
    print(f"chaos run: seed {seed}", flush=True)  # first, so that a run that dies still says it
    bucket = f"chaos-{uuid.uuid4().hex[:8]}"
    prepare(deployment, bucket)
    began = time.monotonic()

    def clock() -> float:
        return time.monotonic() - began

    rng = random.Random(seed)
    until = settings.seconds
    injectors = [  # started, each with a seeded rng of its own
        Injector([deployment.primary], Random(rng.random()), clock, until, PRIMARY_GAP).start(),
        Injector(deployment.replicas, Random(rng.random()), clock, until).start(),
    ]
    keys = key_space(settings.keys)
    load = Load(deployment.proxy.client, bucket, keys, clock)
    ops = run_clients(load, settings.clients, seed, until)
    ran_for = clock()
    faults = sorted((f for i in injectors for f in i.join()), key=lambda f: f.killed)
    result = Result(seed, settings, ops, faults, Findings(), ran_for, faults_ended=clock())

    seen: list[tuple[float, str]] = []
    result.settled_after = _wait_until(lambda: _settled(deployment, seen), settings.settle_timeout)
    result.settling = [(t - began - result.faults_ended, what) for t, what in seen]
    result.last_readiness = readiness(deployment.proxy)
    writes, result.findings = audit_history(ops)
    primary = held(deployment.primary, bucket, keys)
    for key in sorted(set(keys) | set(primary)):
        problem = check_final(key, writes.get(key), primary.get(key), deployment.primary.name)
        if problem:
            result.violations.append(problem)
    result.held[deployment.primary.name] = primary

    def replicas_equal() -> bool:
        for replica in deployment.replicas:
            result.held[replica.name] = held(replica, bucket, keys)
        return all(result.held[r.name] == primary for r in deployment.replicas)

    result.equal_after = _wait_until(replicas_equal, EQUAL_WAIT if result.settled_after else 0)
    for replica in deployment.replicas:
        for key in sorted(set(primary) | set(result.held[replica.name])):
            on_replica, on_primary = result.held[replica.name].get(key), primary.get(key)
            if on_replica != on_primary:
                result.violations.append(
                    f"replica differs: {replica.name} holds {key} = {_short(on_replica)}, "
                    f"the primary {_short(on_primary)}"
                )
    result.metrics = watched_metrics(deployment.proxy)
    return result


def _short(value: str | None) -> str:
    return "absent" if value is None else value[:8]
