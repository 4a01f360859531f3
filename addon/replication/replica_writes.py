"""What a client's write sets off for the replicas, once the primary has answered it 2xx: the
after-steps the gateway's rules attach (`addon.gateway.after_steps`).

| the client's write | sync replica | async replica |
|---|---|---|
| PutObject | its tee lands before the client hears | its tee lands after it |
| CopyObject | repaired before the client hears | a job, after it |
| CompleteMultipartUpload | a job, first in line (a copy in the part layout) | a job |
| Put/DeleteObjectTagging | the tags, before the client hears | a job |
| CreateBucket | the bucket, before the client hears | a job |
| DeleteObject, DeleteObjects | deleted before the client hears | the same |

A PutObject's body is streamed to every replica that answers as it comes (`tee`); its PUT lands
once the primary answered 2xx and both sides are then looked at. A tee that was cut (the replica
fell behind, failed) or found the key changed meanwhile leaves it to the repair job: for a sync
replica, the job itself run at once (`ReplicaJobs.now`): the primary's object copied from the
primary, so every replica holds the primary's bytes and ETag whatever raced. Deletes go to every
replica whatever its mode, before the client hears: that is what keeps a deleted key from being
served by a replica. Each delete is followed by a job that looks at the primary again (a write
may have come between the primary's delete and the replica's).

A replica that fails never fails the client's write and slows it at most by its
responseTimeout once (then it is down and skipped): its miss goes to the outbox, written before
the client hears. For a delete, the tombstone then names that replica with "*" ("whatever copy
it holds", `addon.namespace.hiding`), so that its copy is not served meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from mitmproxy import http

from addon.namespace.after_write import deleted_keys
from addon.replication.plan import BUCKET, DELETE, OBJECT, TAGS
from addon.replication.repair import Job
from addon.replication.replicator import STREAMED, ReplicaJobs
from addon.replication.tee import ReplicaTee, Tees
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import error_code
from addon.s3.log_text import printable
from addon.upstream.backend_client import BackendError

# The client's operations replicated as a job of this kind.
REPLICATED = {
    "PutObject": OBJECT,
    "CopyObject": OBJECT,
    "CompleteMultipartUpload": OBJECT,
    "PutObjectTagging": TAGS,
    "DeleteObjectTagging": TAGS,
    "CreateBucket": BUCKET,
}
DELETES = frozenset({"DeleteObject", "DeleteObjects"})
_LATER = frozenset({"CompleteMultipartUpload"})  # a job for sync replicas too (a long copy)
_MAX_ANSWER = 1024 * 1024
log = logging.getLogger(__name__)


def _succeeded(flow: http.HTTPFlow) -> bool:
    return flow.response is not None and 200 <= flow.response.status_code < 300


@dataclass
class ReplicatedWrite:
    """After the primary took a replicated write: each replica brought up to date (sync) or
    given a job (async); a PutObject's tee (`tee`) lets its replica PUT land instead."""

    replicas: Mapping[str, ReplicaJobs]
    operation: str
    bucket: str
    key: str
    tees: Tees | None = None

    async def __call__(self, flow: http.HTTPFlow) -> str:
        teed = self.tees.each if self.tees is not None else {}
        if not _succeeded(flow):
            if self.tees is not None:
                self.tees.cut()  # nothing of a write the primary refused lands anywhere
            return ""
        job = Job(REPLICATED[self.operation], self.bucket, self.key)
        first = self.operation in _LATER
        now, later = [], []
        for jobs in self.replicas.values():
            tee = teed.get(jobs.replica.name)
            if jobs.replica.replicate == "sync" and not first:
                now.append(jobs)
            elif tee is not None:
                jobs.follow(job, tee.landed())
                later.append(jobs.replica.name)
            else:
                jobs.put(job, first)
                later.append(jobs.replica.name)
        done = await asyncio.gather(*(_sync(j, job, teed.get(j.replica.name)) for j in now))
        notes = [f"{j.replica.name} {d}" for j, d in zip(now, done, strict=True)]
        if later:
            notes.append(f"queued for {', '.join(later)}")
        return "; ".join(notes)


async def _sync(jobs: ReplicaJobs, job: Job, tee: ReplicaTee | None) -> str:
    """A sync replica before the client hears, within its responseTimeout: by its tee, else
    (cut, failed, the key changed meanwhile) by the repair job."""
    seconds = jobs.replica.response_timeout
    if tee is not None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(seconds):
                why = await tee.landed()
        except TimeoutError:
            why = "timeout"
        if not why:
            jobs.observer.repaired(jobs.replica.name, STREAMED)
            return "replicated (tee)"
        where = printable(f"/{job.bucket}/{job.key}")
        log.warning("replication: the tee of %s to %s gave way to a copy: %s", where, tee.name, why)
        seconds = max(0.0, seconds - (time.monotonic() - started))
    return "replicated" if await jobs.now(job, seconds) else "missed"


@dataclass
class ReplicaDeletes:
    """After the primary deleted: the same keys deleted on every replica, before the client
    hears. `known` tells the tombstone what each replica now holds."""

    replicas: Mapping[str, ReplicaJobs]
    operation: str
    bucket: str
    key: str
    missed: dict[str, set[str]] = field(default_factory=dict)  # key -> replicas that missed it
    gone: dict[str, set[str]] = field(default_factory=dict)  # key -> replicas that deleted it

    def known(self, key: str) -> dict[str, str | None]:
        """Replica name -> what the tombstone records without asking it: "*" (it missed the
        delete: any copy it holds is hidden), None (it deleted it)."""
        found: dict[str, str | None] = dict.fromkeys(self.gone.get(key, ()))
        found.update(dict.fromkeys(self.missed.get(key, ()), "*"))
        return found

    async def __call__(self, flow: http.HTTPFlow) -> str:
        if not _succeeded(flow):
            return ""
        if self.operation == "DeleteObject":
            keys = [self.key]
        else:
            assert flow.response is not None
            keys = deleted_keys(flow.request.raw_content or b"", flow.response.content or b"")
        if not keys:
            return ""
        notes = await asyncio.gather(*(self._on(jobs, keys) for jobs in self.replicas.values()))
        return "; ".join(notes)

    async def _on(self, jobs: ReplicaJobs, keys: list[str]) -> str:
        name = jobs.replica.name
        failed: dict[str, str] = {}
        if not jobs.liveness.up:
            failed = dict.fromkeys(keys, "down")
        else:
            try:
                async with asyncio.timeout(jobs.replica.response_timeout):
                    failed = await self._delete(jobs, keys)
            except (BackendError, TimeoutError, ValueError) as e:
                kind = getattr(e, "kind", "timeout")
                why = str(e) or f"no answer within {jobs.replica.response_timeout:g}s"
                jobs.observer.failed(name, kind)
                jobs.liveness.suspect(why)
                failed = dict.fromkeys(keys, f"{kind}: {why}")
        for key in keys:
            if key in failed:
                self.missed.setdefault(key, set()).add(name)
            else:
                self.gone.setdefault(key, set()).add(name)
                jobs.put(Job(OBJECT, self.bucket, key))  # a write may have come in between
        if failed:
            why = next(iter(failed.values()))
            await jobs.record([Job(DELETE, self.bucket, k) for k in failed], why)
            return f"{name} missed {len(failed)} of {len(keys)} deletes (outbox)"
        return f"deleted on {name}"

    async def _delete(self, jobs: ReplicaJobs, keys: list[str]) -> dict[str, str]:
        """The keys deleted on the replica; those it did not delete, and why."""
        client, replica = jobs.sides.client, jobs.replica
        if self.operation == "DeleteObject":
            path = sigv4.key_path(self.key)
            async with client.request(replica, "DELETE", self.bucket, path) as reply:
                code = error_code(await reply.read(_MAX_ANSWER))
            if reply.status in (200, 204) or code in ("NoSuchBucket", "NoSuchKey"):
                return {}
            return {self.key: f"status: answered {reply.status} {code or ''}".strip()}
        objects = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
        body = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
        headers = [("content-md5", b64encode(hashlib.md5(body).digest()).decode())]
        async with client.request(
            replica, "POST", self.bucket, query="delete=", headers=headers, body=body
        ) as reply:
            answer = await reply.read(_MAX_ANSWER)
        if reply.status == 404 and error_code(answer) == "NoSuchBucket":
            return {}
        if reply.status != 200:
            return dict.fromkeys(keys, f"status: answered {reply.status}")
        errors = {
            s3_xml.text(e, "Key", strip=False): s3_xml.text(e, "Code")
            for e in s3_xml.root(answer, "DeleteResult")
            if s3_xml.local(e.tag) == "Error"
        }
        return {k: f"status: {code}" for k, code in errors.items() if k in keys}
