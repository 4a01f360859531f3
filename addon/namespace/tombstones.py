"""Deletes that stick: a tombstone on the primary hides the fallback copies a delete left.

A DELETE (or DeleteObjects) through the proxy removes the key from the primary only: writes never
touch a fallback. If a fallback still has the key, the next read would serve it again. So, when
the primary's `metaBucket` is set, the delete leaves a tombstone there, the object
`tombstones/<bucket>/<key>`, whose body names each fallback that had the key and the ETag of the
copy it had (`tombstone_record`). Reads consult it only when the primary misses (a primary hit
stays one round trip); a fallback's copy that it hides (`hiding`) is then absent, one written
there since (another ETag) shows again. The state lives in S3 only: every instance over the
same backends agrees at once.

Writes never touch tombstones (a PUT is one request to the primary): a tombstone is read only
once the primary lacks the key, so it never hides what a later write put there. It stays after
such a write, and the copy it names stays hidden however the key leaves the primary again. It
goes once the copies it hides are gone (`s3-multi tombstones --prune`, off the request path):
pruned, the metaBucket holds no more tombstones than the fallbacks hold keys. The nonce makes
each tombstone's ETag its own: a removal, `DELETE If-Match` the ETag reviewed, never removes
one written since, even one that hides the same copies. Requests: the proxy's own client's.

A copy of a fallback's object to the primary (`addon.migration`: copy-on-read, the drain) may land
while a delete of that key is on its way. The copy reads the tombstone after it landed; the
delete, after writing the tombstone, looks for such a copy on the primary (its
x-amz-meta-s3multi-source-etag names a copy the tombstone hides) and removes it: whichever
comes second sees the other, so a deleted key never comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

from addon.auth.checks import Verified
from addon.config.settings import Backend
from addon.namespace.hiding import Hides, hidden
from addon.namespace.object_meta import SOURCE_ETAG
from addon.namespace.tombstone_record import PREFIX, hides_in, key_of, record
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import error_code
from addon.upstream.backend_client import BackendClient, BackendError
from addon.upstream.retarget import Plan
from addon.upstream.uploads import BodyPlan

log = logging.getLogger(__name__)
_MAX_BODY = 64 * 1024
_CONCURRENCY = 16
_BODIES_KEPT = 10_000
# What is known of some fallbacks' copies of a key without asking them (see `bury`).
Known = Callable[[str], Mapping[str, str | None]]


def _NOTHING_KNOWN(key: str) -> Mapping[str, str | None]:
    return {}


def lookup(meta_bucket: str, bucket: str, key: str) -> Plan:
    """The GET of a key's tombstone, as a request that `retarget.aim` can send in-flow."""
    verified = Verified((), sigv4.EMPTY_SHA256)
    path = sigv4.canonical_path("/" + key_of(bucket, key))[1:]
    return Plan("GET", meta_bucket, path, "", (), verified, BodyPlan(verified))


class TombstoneError(Exception):
    """A tombstone could not be written, read or removed."""


@dataclass
class Tombstones:
    primary: Backend
    fallbacks: tuple[Backend, ...]
    client: BackendClient

    def __post_init__(self) -> None:
        # Tombstone bodies by (key, ETag): content that cannot change under that ETag, so any
        # instance may keep it without ever disagreeing with another.
        self._bodies: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()

    @property
    def meta_bucket(self) -> str:
        return self.primary.meta_bucket

    # --- writes ----------------------------------------------------------------------------------

    async def bury(self, bucket: str, keys: Iterable[str], known: Known = _NOTHING_KNOWN) -> None:
        """After the primary deleted `keys`: a tombstone for each that a fallback still has.
        `known(key)` says, for some fallbacks, what to record without asking them (a replica
        that took the delete: None; one that missed it: hiding.ANY)."""
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(key: str) -> None:
            async with limit:
                hides = await self._copies(bucket, key, known(key))
                if hides:
                    await self._put(key_of(bucket, key), record(hides))
                    await self._remove_landed_copy(bucket, key, hides)

        await asyncio.gather(*(one(k) for k in keys))

    async def _copies(
        self, bucket: str, key: str, known: Mapping[str, str | None]
    ) -> dict[str, str]:
        """Fallback name -> the ETag of its copy, for the fallbacks that have the key."""

        async def etag(backend: Backend) -> str | None:
            if backend.name in known:
                return known[backend.name]
            try:
                async with self.client.request(
                    backend, "HEAD", bucket, sigv4.key_path(key)
                ) as reply:
                    found = reply.header("etag") if reply.status == 200 else None
                    await reply.read(0)
            except BackendError as e:
                raise TombstoneError(f"{backend.name}: {e}") from None
            if reply.status not in (200, 403, 404):
                raise TombstoneError(f"{backend.name} answered {reply.status}")
            return found

        found = await asyncio.gather(*(etag(b) for b in self.fallbacks))
        return {b.name: e for b, e in zip(self.fallbacks, found, strict=True) if e is not None}

    async def _remove_landed_copy(self, bucket: str, key: str, hides: dict[str, str]) -> None:
        """A copy of a hidden fallback copy that reached the primary after the delete did."""
        try:
            async with self.client.request(
                self.primary, "HEAD", bucket, sigv4.key_path(key)
            ) as head:
                await head.read(0)
            source = head.header(SOURCE_ETAG)
            if not landed_copy(hides, self.primary.name, head.status, head.header("etag"), source):
                return
            condition = [("if-match", head.header("etag") or "")]  # not a client's write since
            async with self.client.request(
                self.primary, "DELETE", bucket, sigv4.key_path(key), headers=condition
            ) as reply:
                await reply.read(_MAX_BODY)
        except BackendError as e:
            raise TombstoneError(f"{self.primary.name}: {e}") from None
        if reply.status not in (200, 204, 412):
            raise TombstoneError(f"{self.primary.name} answered {reply.status}")
        log.info("/%s/%s: a copy that landed during its delete was removed", bucket, key)

    async def _put(self, key: str, body: bytes) -> None:
        headers = [("content-type", "application/json")]
        for attempt in range(2):
            async with self.client.request(
                self.primary,
                "PUT",
                self.meta_bucket,
                sigv4.key_path(key),
                headers=headers,
                body=body,
            ) as reply:
                answer = await reply.read(_MAX_BODY)
            if reply.status == 200:
                return
            if attempt == 0 and error_code(answer) == "NoSuchBucket":
                await self._create_meta_bucket()
                continue
            raise TombstoneError(f"{self.primary.name} answered {reply.status}")

    async def _create_meta_bucket(self) -> None:
        async with self.client.request(self.primary, "PUT", self.meta_bucket) as reply:
            answer = await reply.read(_MAX_BODY)
        if reply.status != 200 and error_code(answer) not in ("BucketAlreadyOwnedByYou",):
            raise TombstoneError(f"cannot create {self.meta_bucket}: {reply.status}")

    async def forget(self, tomb_key: str, etag: str) -> bool:
        """Remove a tombstone if it is still the one reviewed (`etag`, as its listing or GET gave
        it): one `DELETE If-Match`. False when it was not removed: written again since (412; 409
        on AWS when a write is under way) or gone (404, or 412 from a server that says so)."""
        condition = [("if-match", etag)]
        try:
            async with self.client.request(
                self.primary,
                "DELETE",
                self.meta_bucket,
                sigv4.key_path(tomb_key),
                headers=condition,
            ) as reply:
                await reply.read(_MAX_BODY)
        except BackendError as e:
            raise TombstoneError(str(e)) from None
        if reply.status in (200, 204):
            return True
        if reply.status in (404, 409, 412):
            return False
        raise TombstoneError(f"{self.primary.name} answered {reply.status}")

    # --- reads (listings) ------------------------------------------------------------------------

    async def hiding(self, bucket: str, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """For those of `names` (sorted keys) that have a tombstone: what it hides."""
        if not names:
            return {}
        wanted = {key_of(bucket, n): n for n in names}
        first, last = key_of(bucket, names[0]), key_of(bucket, names[-1])
        found: dict[str, dict[str, str]] = {}
        after = None
        while True:
            page, truncated = await self.list_tombstones(first, after)
            for tomb_key, etag in page:
                if tomb_key > last:
                    return found
                if tomb_key in wanted:
                    found[wanted[tomb_key]] = await self.hides_of(tomb_key, etag)
            if not truncated or not page:
                return found
            after = page[-1][0]

    async def any_under(self, bucket: str, prefix: str) -> bool:
        """Whether any key under `prefix` has a tombstone."""
        page, _ = await self.list_tombstones(key_of(bucket, prefix), None, under=True, most=1)
        return bool(page)

    async def list_tombstones(
        self, first: str, after: str | None, under: bool = False, most: int = 1000
    ) -> tuple[list, bool]:
        """Up to `most` tombstones (key, ETag) after `after`: from `first` on, or with `under`
        those whose key starts with `first`; and whether there are more."""
        pairs = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", str(most))]
        pairs.append(("prefix", first if under else PREFIX))
        if after is not None:
            pairs.append(("start-after", after))
        elif not under:  # from `first` on: after the name just before it
            pairs.append(("start-after", first[:-1]))
        query = sigv4.canonical_query(pairs)
        try:
            async with self.client.request(
                self.primary, "GET", self.meta_bucket, query=query
            ) as reply:
                body = await reply.read(8 * 1024 * 1024)
        except BackendError as e:
            raise TombstoneError(str(e)) from None
        if reply.status == 404 and error_code(body) == "NoSuchBucket":
            return [], False  # no tombstone was ever written
        if reply.status != 200:
            raise TombstoneError(f"{self.primary.name} answered {reply.status}")
        return _listed(body)

    async def hides_of(self, tomb_key: str, etag: str) -> dict[str, str]:
        kept = self._bodies.get((tomb_key, etag))
        if kept is not None:
            self._bodies.move_to_end((tomb_key, etag))
            return kept
        hides = await self._read(tomb_key)
        if hides:  # gone since it was listed ({}): nothing to keep
            self._bodies[(tomb_key, etag)] = hides
            if len(self._bodies) > _BODIES_KEPT:
                self._bodies.popitem(last=False)
        return hides

    async def hides(self, bucket: str, key: str) -> dict[str, str]:
        """What the key's tombstone hides now, read afresh (none: {})."""
        return await self._read(key_of(bucket, key))

    async def _read(self, tomb_key: str) -> dict[str, str]:
        try:
            async with self.client.request(
                self.primary, "GET", self.meta_bucket, sigv4.key_path(tomb_key)
            ) as reply:
                body = await reply.read(_MAX_BODY)
        except BackendError as e:
            raise TombstoneError(str(e)) from None
        if reply.status == 404:
            return {}
        if reply.status != 200:
            raise TombstoneError(f"{self.primary.name} answered {reply.status}")
        try:
            return hides_in(body)
        except ValueError:
            raise TombstoneError(f"unreadable tombstone {tomb_key}") from None


def landed_copy(
    hides: Hides, primary: str, status: int, etag: str | None, source_etag: str | None
) -> bool:
    """Whether the primary's answer to a HEAD of the key, after its delete wrote the tombstone,
    is a copy the proxy made of a copy the tombstone hides: only its source ETag can say so, the
    primary being named in no tombstone (`hiding`)."""
    return status == 200 and hidden(hides, primary, etag, source_etag)


def _listed(body: bytes) -> tuple[list[tuple[str, str]], bool]:
    """(tombstone key, ETag) of a ListObjectsV2 page of the metaBucket, and whether it is cut."""
    try:
        document = s3_xml.root(body, "ListBucketResult")
    except ValueError as e:
        raise TombstoneError(str(e)) from None
    decode = unquote_plus if s3_xml.text(document, "EncodingType") == "url" else str
    entries = [
        (decode(s3_xml.text(e, "Key", strip=False)), s3_xml.text(e, "ETag"))
        for e in document
        if s3_xml.local(e.tag) == "Contents"
    ]
    return sorted(entries), s3_xml.text(document, "IsTruncated").lower() == "true"
