"""In-sync certificates: which replicas may answer reads while the primary cannot.

A replica holds every delete made through the proxy before that delete's client heard (the
replication does that), but it may miss other writes for a while, and a delete it missed (it was
unreachable) is in its outbox until repaired. So it may answer reads in an outage only while it
is known to have nothing pending: its certificate, `<replica metaBucket>/replication/
certificate.json`, says so until a time:

    {"primary": "main", "replica": "dr", "issued": "2026-12-07T18:20:01.123Z",
     "until": "2026-12-07T18:20:16.123Z", "by": "host-4711-1765131601123", "nonce": "5f0c..."}

Renewal (`renew`): every RENEW_EVERY seconds, valid VALID_FOR, written only while the primary
and the replica answer and the replica's backlog (`Backlog`: its outbox) is empty; then the
backlog is looked at again, and a certificate written while an entry appeared is revoked at once
(DELETE If-Match its ETag: one round trip is the remaining window). A process that records a miss
for a replica it can still reach revokes its certificate (`revoke`).

Reading (`read`, every process, every READ_EVERY seconds): the rule of trust is `trusted`. A
certificate is trusted until its `until` less MARGIN (clocks of instances may differ); never one
issued before the replica last came back from being down (it may have missed deletes meanwhile);
and while the primary keeps failing, one that was valid when the primary began to fail stays
trusted: no write reaches the primary meanwhile, so what the replica lacked then is all it lacks.
A replica without a metaBucket has no certificate: it never answers in failover.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from addon.config.settings import Backend
from addon.namespace.adoption import create_bucket
from addon.s3 import sigv4
from addon.s3.errors import S3Error, error_code
from addon.upstream.backend_client import BackendClient, BackendError
from addon.upstream.health import Health

log = logging.getLogger(__name__)
KEY = "replication/certificate.json"
RENEW_EVERY = 5.0
VALID_FOR = 15.0
READ_EVERY = 5.0
MARGIN = 1.0  # seconds taken off a certificate's validity, for clocks that differ
_MAX_BODY = 64 * 1024


class Backlog(Protocol):
    """What a replica still lacks, as the replication knows it (its outbox satisfies this)."""

    async def empty(self, replica: str) -> bool:
        """Nothing is pending for `replica`: no outbox entry, nothing waiting to be written."""
        ...


class UnknownBacklog:
    """The backlog when nothing replicates (no replica configured): never known to be empty,
    so no certificate is ever renewed and failover reads are answered 503 (safe)."""

    async def empty(self, replica: str) -> bool:
        return False


@dataclass(frozen=True)
class Certificate:
    primary: str
    replica: str
    issued: float  # wall time, seconds
    until: float
    by: str = ""
    nonce: str = ""

    def body(self) -> bytes:
        fields = {
            "primary": self.primary,
            "replica": self.replica,
            "issued": iso(self.issued),
            "until": iso(self.until),
            "by": self.by,
            "nonce": self.nonce,
        }
        return json.dumps(fields).encode()

    @classmethod
    def parse(cls, body: bytes) -> Certificate | None:
        try:
            raw = json.loads(body)
            issued, until = epoch(str(raw["issued"])), epoch(str(raw["until"]))
            by, nonce = str(raw.get("by", "")), str(raw.get("nonce", ""))
            return cls(str(raw["primary"]), str(raw["replica"]), issued, until, by, nonce)
        except (ValueError, KeyError, TypeError):
            return None


def iso(at: float) -> str:
    """UTC with milliseconds, as S3 writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def epoch(text: str) -> float:
    """An `iso` time back to seconds; ValueError if it is not one."""
    whole, _, fraction = text.removesuffix("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def trusted(
    certificate: Certificate | None,
    now: float,
    replica_back_since: float | None = None,
    primary_failing_since: float | None = None,
) -> bool:
    """The rule of trust (see the module's docstring); all times are wall times."""
    if certificate is None:
        return False
    if replica_back_since is not None and certificate.issued < replica_back_since:
        return False
    at = now if primary_failing_since is None else min(now, primary_failing_since)
    return at < certificate.until - MARGIN


def instance_name() -> str:
    """This process, for a certificate's `by`: host, pid and start time in ms."""
    return f"{socket.gethostname()}-{os.getpid()}-{int(time.time() * 1000)}"


class Certificates:
    """The certificates of the replicas, as this process reads and renews them."""

    def __init__(
        self,
        primary: Backend,
        replicas: Sequence[Backend],
        client: BackendClient,
        health: Health,
        backlog: Backlog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.primary = primary
        self.replicas = tuple(r for r in replicas if r.meta_bucket)
        self.client = client
        self.health = health
        self.backlog = backlog
        self.clock = clock
        self.instance = instance_name()
        self.held: dict[str, Certificate | None] = {r.name: None for r in self.replicas}
        self._task: asyncio.Task | None = None
        self._revoking: set[asyncio.Task] = set()
        for replica in replicas:
            if not replica.meta_bucket:
                log.warning(
                    "replica %s has no metaBucket, so no in-sync certificate: it never answers "
                    "reads while the primary cannot",
                    replica.name,
                )

    def certified(self, replica: Backend) -> bool:
        """Whether `replica` may answer reads now, as far as its certificate goes."""
        return replica.name in self.held and trusted(
            self.held[replica.name],
            self.clock(),
            self.health.back_since(replica.name),
            self.health.failing_since(self.primary.name),
        )

    def serving(self) -> tuple[Backend, ...]:
        """The replicas that may answer reads the primary cannot: up and certified."""
        return tuple(r for r in self.replicas if self.health.is_up(r.name) and self.certified(r))

    # --- I/O -------------------------------------------------------------------------------------

    async def read(self, replica: Backend) -> None:
        """Read the replica's certificate now (kept as it was when it cannot be read)."""
        try:
            async with self.client.request(
                replica, "GET", replica.meta_bucket, sigv4.key_path(KEY)
            ) as reply:
                body = await reply.read(_MAX_BODY)
        except BackendError:
            return
        if reply.status == 404:
            self.held[replica.name] = None
        elif reply.status == 200:
            found = Certificate.parse(body)
            names = (self.primary.name, replica.name)
            if found is None or (found.primary, found.replica) != names:
                found = None  # not one for this pair: never trusted
            self.held[replica.name] = found

    async def renew(self, replica: Backend) -> bool:
        """Write a new certificate if its conditions hold; whether one stands written."""
        primary, name = self.primary.name, replica.name
        if not (self.health.is_up(name) and self.health.failing_since(primary) is None):
            return False
        if not await self.backlog.empty(name):
            return False
        now = self.clock()
        nonce = secrets.token_hex(8)
        certificate = Certificate(primary, name, now, now + VALID_FOR, self.instance, nonce)
        etag = await self._put(replica, certificate.body())
        if etag is None:
            return False
        if not await self.backlog.empty(name):
            # Something was missed while it was written: take it back (if it is still ours).
            await self.revoke(replica, etag)
            return False
        self.held[name] = certificate
        return True

    def missed(self, name: str) -> None:
        """A miss was recorded for replica `name`: its certificate is revoked at once (a task)."""
        replica = next((r for r in self.replicas if r.name == name), None)
        if replica is None or self.held.get(name) is None:
            return
        self.held[name] = None  # not trusted from now on, whatever the DELETE finds
        task = asyncio.get_running_loop().create_task(self.revoke(replica))
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def revoke(self, replica: Backend, etag: str | None = None) -> None:
        """Remove the replica's certificate (only the one with `etag`, if given)."""
        headers = [("if-match", etag)] if etag else []
        self.held[replica.name] = None
        try:
            async with self.client.request(
                replica, "DELETE", replica.meta_bucket, sigv4.key_path(KEY), headers=headers
            ) as reply:
                await reply.read(_MAX_BODY)
        except BackendError as e:
            log.warning("certificate of replica %s not revoked: %s", replica.name, e)

    async def _put(self, replica: Backend, body: bytes) -> str | None:
        """PUT the certificate (making the replica's metaBucket if it lacks it); its ETag."""
        path = sigv4.key_path(KEY)
        headers = [("content-type", "application/json")]
        try:
            for attempt in range(2):
                async with self.client.request(
                    replica, "PUT", replica.meta_bucket, path, headers=headers, body=body
                ) as reply:
                    answer = await reply.read(_MAX_BODY)
                if reply.status == 200:
                    return reply.header("etag") or ""
                if attempt == 0 and error_code(answer) == "NoSuchBucket":
                    await create_bucket(self.client, replica, replica.meta_bucket)
                    continue
                log.warning(
                    "certificate of replica %s: PUT answered %s", replica.name, reply.status
                )
                return None
        except (BackendError, S3Error) as e:
            log.warning("certificate of replica %s not renewed: %s", replica.name, e)
        return None

    # --- the background loop ---------------------------------------------------------------------

    def start(self) -> None:
        if self.replicas and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self.renew(r) for r in self.replicas))
            await asyncio.gather(*(self.read(r) for r in self.replicas))
            await asyncio.sleep(min(RENEW_EVERY, READ_EVERY))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
