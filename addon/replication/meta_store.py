"""Replication's records in the primary's metaBucket: small objects written, read, listed and
removed with the proxy's own client, under conditions where it matters.

What lives there (beside the tombstones, `addon.namespace.tombstones`):

    replication/outbox/<replica>/<time>-<instance>-<seq>-<count>.json   misses (`outbox`)
    replication/lease/<replica>.json                                   who drains them (`lease`)

The metaBucket is created on the first write, as tombstones create it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from addon.config.settings import Backend
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import error_code
from addon.upstream.backend_client import BackendClient, BackendError

PREFIX = "replication/"
_MAX_BODY = 8 * 1024 * 1024  # a batch of 1,000 entries is under 1 MiB
_MAX_LISTING = 8 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    etag: str
    body: bytes

    @property
    def code(self) -> str:
        return error_code(self.body) or ""


@dataclass
class MetaStore:
    client: BackendClient
    primary: Backend

    @property
    def bucket(self) -> str:
        return self.primary.meta_bucket

    async def _send(self, method: str, key: str, query: str = "", **kw) -> Answer:
        """Raises BackendError when the primary cannot be had."""
        async with self.client.request(
            self.primary, method, self.bucket, sigv4.key_path(key) if key else "", query, **kw
        ) as reply:
            body = await reply.read(_MAX_BODY)
        return Answer(reply.status, reply.header("etag") or "", body)

    async def put(
        self, key: str, body: bytes, condition: tuple[tuple[str, str], ...] = ()
    ) -> Answer:
        """PUT, creating the metaBucket if it is not there yet."""
        headers = [("content-type", "application/json"), *condition]
        answer = await self._send("PUT", key, headers=headers, body=body)
        if answer.status == 404 and answer.code == "NoSuchBucket":
            created = await self._send("PUT", "")
            if created.status != 200 and created.code != "BucketAlreadyOwnedByYou":
                raise BackendError(f"cannot create {self.bucket}: {created.status}")
            answer = await self._send("PUT", key, headers=headers, body=body)
        return answer

    async def get(self, key: str) -> Answer:
        return await self._send("GET", key)

    async def delete(self, key: str, if_match: str | None = None) -> Answer:
        headers = [("if-match", if_match)] if if_match else []
        return await self._send("DELETE", key, headers=headers)

    async def names(self, prefix: str, most: int = 1000) -> tuple[list[str], bool]:
        """Up to `most` keys under `prefix`, in order; whether there are more. None there (or
        no metaBucket yet): none."""
        pairs = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", str(most))]
        query = sigv4.canonical_query([*pairs, ("prefix", prefix)])
        async with self.client.request(self.primary, "GET", self.bucket, query=query) as reply:
            body = await reply.read(_MAX_LISTING)
        if reply.status == 404 and error_code(body) == "NoSuchBucket":
            return [], False
        if reply.status != 200:
            raise BackendError(f"{self.primary.name} answered {reply.status} to a listing")
        document = s3_xml.root(body, "ListBucketResult")
        decode = unquote_plus if s3_xml.text(document, "EncodingType") == "url" else str
        keys = [
            decode(s3_xml.text(e, "Key", strip=False))
            for e in document
            if s3_xml.local(e.tag) == "Contents"
        ]
        return sorted(keys), s3_xml.text(document, "IsTruncated").lower() == "true"
