"""The primary and one replica as a repair sees them (`repair.Sides`), over the proxy's own
client: HEADs, the copy, conditional deletes, tags, buckets.

A copy goes through the migration's `object_copy`: the primary's object, read with a GET
If-Match the ETag planned on (a primary that changed meanwhile is `Changed`), streamed onto the
replica under the plan's condition. A multipart object keeps its part layout (each part's
size from a HEAD ?partNumber=n, If-Match the same ETag), so that the replica's copy has the
primary's ETag; a backend that ignores partNumber is copied in the migration's own layout, and
the copy's x-amz-meta-s3multi-source-etag says it is the same object. Every copy names the
primary in x-amz-meta-s3multi-replica: a key the primary no longer has and the replica has with
that mark was deleted; one without it is the replica's own, from before it was a replica.

Just before a copy appears where the replica had none, the primary is looked at once more: a
key deleted since the copy began is not brought back (left: a window of one round trip, which
the repair's post-check closes). Moto ignores If-Match on CompleteMultipartUpload: just before a
multipart copy completes over an existing copy, the replica's key is looked at once more.
"""

from __future__ import annotations

import contextlib
import hashlib
from base64 import b64encode
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from addon.config.settings import Backend
from addon.migration.copier import layout as own_layout
from addon.migration.object_copy import ObjectCopy
from addon.migration.source import Abandoned, CopyFailed, Source
from addon.namespace.adoption import create_bucket
from addon.namespace.object_meta import REPLICA_MARK, SOURCE_ETAG, tagging_header, tags_of
from addon.replication.plan import ABSENT, Head
from addon.replication.repair import PRIMARY, REPLICA, Changed, Conflict, NoBucket, SideFailed
from addon.s3 import sigv4
from addon.s3.errors import S3Error, error_code
from addon.s3.etags import normal_etag
from addon.upstream.backend_client import BackendClient, BackendError, Reply

_MAX_ANSWER = 64 * 1024
_SINGLE_PUT_MOST = 5 * 1024**3  # S3's largest PUT
Tags = tuple[tuple[str, str], ...]


@dataclass
class BackendSides:
    client: BackendClient
    primary: Backend
    replica: Backend

    def _backend(self, side: str) -> Backend:
        return self.primary if side == PRIMARY else self.replica

    @contextlib.asynccontextmanager
    async def _request(self, side: str, method: str, bucket: str, key: str, query="", **kw):
        """A request to one side; its failure to answer is that side's SideFailed."""
        try:
            async with self.client.request(
                self._backend(side), method, bucket, sigv4.key_path(key), query, **kw
            ) as reply:
                yield reply
        except BackendError as e:
            raise SideFailed(side, e.kind, str(e)) from None

    async def head(self, side: str, bucket: str, key: str) -> Head | None:
        async with self._request(side, "HEAD", bucket, key) as reply:
            await reply.read(0)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise SideFailed(side, "status", f"answered {reply.status} to a HEAD")
        return Head.of(reply.headers)

    async def copy(
        self, bucket: str, key: str, primary: Head, condition: tuple[tuple[str, str], ...]
    ) -> str:
        layout = await self._layout(bucket, key, primary)
        tags = await self.tags(bucket, key) if primary.tag_count else ()
        headers = [
            *primary.described,
            (SOURCE_ETAG, normal_etag(primary.etag)),
            (REPLICA_MARK, self.primary.name),
            *tagging_header(list(tags)),
        ]

        async def may_land() -> None:
            if condition == ABSENT:  # a key deleted meanwhile is not brought back
                now = await self.head(PRIMARY, bucket, key)
                if now is None or now.etag != primary.etag:
                    raise Abandoned("the primary's key changed meanwhile")
            elif layout is not None:  # moto ignores If-Match on CompleteMultipartUpload
                now = await self.head(REPLICA, bucket, key)
                if now is None or now.etag != dict(condition).get("if-match"):
                    raise Abandoned("the replica's key changed meanwhile")

        if_match = [("if-match", primary.etag)]
        async with self._request(PRIMARY, "GET", bucket, key, headers=if_match) as reply:
            if reply.status in (404, 412):
                raise Changed()
            if reply.status != 200:
                raise SideFailed(PRIMARY, "status", f"answered {reply.status} to a GET")
            source = Source.of(self.primary, bucket, key, reply.headers)
            if source is None:
                raise SideFailed(PRIMARY, "broken", "a GET without Content-Length or ETag")
            writer = ObjectCopy(self.client, self.replica)
            pieces = _primary_pieces(reply)
            try:
                copied = await writer.land(source, pieces, headers, condition, layout, may_land)
            except Abandoned:
                raise Conflict() from None
            except CopyFailed as e:
                if e.code == "NoSuchBucket":
                    raise NoBucket() from None
                raise SideFailed(REPLICA, "status", str(e)) from None
            except (BackendError, S3Error, ValueError) as e:
                raise SideFailed(REPLICA, getattr(e, "kind", "broken"), str(e)) from None
        return copied.etag

    async def _layout(self, bucket: str, key: str, primary: Head) -> Sequence[int] | None:
        """The primary's part sizes (None: one PUT), for a copy with the primary's ETag."""
        _, dash, count = normal_etag(primary.etag).partition("-")
        if not dash or not count.isdigit():
            return None if primary.size <= _SINGLE_PUT_MOST else own_layout(primary.size)
        sizes = []
        for number in range(1, int(count) + 1):
            query = f"partNumber={number}"
            headers = [("if-match", primary.etag)]
            async with self._request(PRIMARY, "HEAD", bucket, key, query, headers=headers) as head:
                await head.read(0)
            if head.status in (404, 412):
                raise Changed()
            length = head.header("content-length") or ""
            if head.status != 206 or not length.isdigit():
                return own_layout(primary.size)  # partNumber ignored: the migration's layout
            sizes.append(int(length))
        if sum(sizes) != primary.size:
            raise Changed()
        return sizes

    async def delete(self, bucket: str, key: str, etag: str) -> None:
        headers = [("if-match", etag)]
        async with self._request(REPLICA, "DELETE", bucket, key, headers=headers) as reply:
            code = error_code(await reply.read(_MAX_ANSWER))
        if reply.status in (200, 204) or code == "NoSuchBucket":
            return
        if reply.status in (404, 409, 412):
            raise Conflict()
        raise SideFailed(REPLICA, "status", f"answered {reply.status} to a DELETE")

    async def tags(self, bucket: str, key: str) -> Tags:
        try:
            return tuple(await tags_of(self.client, self.primary, bucket, key))
        except BackendError as e:
            raise SideFailed(PRIMARY, e.kind, str(e)) from None
        except ValueError as e:
            raise SideFailed(PRIMARY, "broken", str(e)) from None

    async def copy_tags(self, bucket: str, key: str) -> Tags:
        tags = await self.tags(bucket, key)
        if tags:
            document = "".join(
                f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags
            )
            body = f"<Tagging><TagSet>{document}</TagSet></Tagging>".encode()
            md5 = b64encode(hashlib.md5(body).digest()).decode()
            kw: dict = {"headers": [("content-md5", md5)], "body": body}
            method = "PUT"
        else:
            method, kw = "DELETE", {}
        async with self._request(REPLICA, method, bucket, key, "tagging=", **kw) as reply:
            await reply.read(_MAX_ANSWER)
        if reply.status == 404:
            raise Conflict()  # the copy is gone: run again
        if reply.status not in (200, 204):
            raise SideFailed(REPLICA, "status", f"answered {reply.status} to tagging")
        return tags

    async def create_bucket(self, bucket: str) -> None:
        try:
            await create_bucket(self.client, self.replica, bucket)
        except BackendError as e:
            raise SideFailed(REPLICA, e.kind, str(e)) from None
        except S3Error as e:
            raise SideFailed(REPLICA, "status", str(e)) from None


async def _primary_pieces(reply: Reply) -> AsyncIterator[bytes]:
    """The GET's body; its failure is the primary's, not the replica's being written."""
    try:
        async for piece in reply.pieces():
            yield piece
    except BackendError as e:
        raise SideFailed(PRIMARY, e.kind, str(e)) from None
