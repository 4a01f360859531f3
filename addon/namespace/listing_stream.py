"""A bucket's listing on one backend, page after page, for the proxy's own work (the drain of
`s3-multi migrate`, `s3-multi check`): ListObjectsV2 with keys url-encoded (so any key survives
the XML) and continuation tokens, in the order the backend lists. That order is the backend's:
S3's byte order, or SeaweedFS's path-segment order, where a continuation token resumes and
start-after does not (SeaweedFS skips `a/...` after `start-after=a`).

The next page is asked for as soon as one is handed over: the listing goes at the backend's
pace while its reader works on the page it has (a reader that works long without awaiting
anything should yield now and then, so that the answer is read as it comes). At most two pages
are held: the one handed over and the next.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from typing import NamedTuple
from urllib.parse import unquote_plus

from addon.config.settings import Backend
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import error_code
from addon.upstream.backend_client import BackendClient, BackendError

MAX_PAGE = 8 * 1024 * 1024  # 1,000 keys of 1,024 bytes, url-encoded thrice over, fit


class Listed(NamedTuple):
    """A key as a listing (or a HEAD) gives it. A NamedTuple, not a frozen dataclass: a check
    makes one per key and side, and a frozen dataclass's __init__ sets each field through
    object.__setattr__."""

    key: str
    etag: str
    size: int


_listed = functools.partial(tuple.__new__, Listed)  # Listed._make, without its Python frame


def parse(body: bytes, strip: int = 0) -> tuple[list[Listed], str | None]:
    """One ListBucketResult (v2): its keys (less their first `strip` characters) and the token
    of the next page (None after the last). ValueError if it is not one."""
    fields, token = parse_fields(body, strip)
    return list(map(_listed, fields)), token


def parse_fields(body: bytes, strip: int = 0) -> tuple[list[tuple[str, str, int]], str | None]:
    """`parse`'s keys as (key, ETag, size): what another process sends back cheaply.

    The fields are found by their tag in the root's namespace (S3's, or none, as a backend
    sends it): a page is read once per key per side of a comparison, so this loop is what a
    check of a million keys spends most of its time in."""
    document = s3_xml.root(body, "ListBucketResult")
    namespace = document.tag[: document.tag.find("}") + 1]
    contents, key_tag = namespace + "Contents", namespace + "Key"
    size_tag, etag_tag = namespace + "Size", namespace + "ETag"
    decode = unquote_plus if s3_xml.text(document, "EncodingType") == "url" else str
    entries: list[tuple[str, str, int]] = []
    for element in document:
        if element.tag != contents:
            continue
        key, size, etag = "", "", ""
        for field in element:
            tag = field.tag
            if tag == key_tag:
                key = field.text or ""
            elif tag == size_tag:
                size = field.text or ""
            elif tag == etag_tag:
                etag = (field.text or "").strip()
        entries.append((decode(key)[strip:], etag, int(size) if size.isdigit() else 0))
    token = s3_xml.text(document, "NextContinuationToken")
    more = s3_xml.text(document, "IsTruncated").lower() == "true" and token
    return entries, token if more else None


class ListingStream:
    """The pages of `bucket` on `backend` under `prefix`; `requests` counts those sent, and
    `missing` says, once the first page is had, that the backend lacks the bucket."""

    def __init__(
        self,
        client: BackendClient,
        backend: Backend,
        bucket: str,
        prefix: str = "",
        strip: int = 0,
        parser: Executor | None = None,
    ) -> None:
        self.client, self.backend, self.bucket = client, backend, bucket
        self.prefix, self.strip, self.parser = prefix, strip, parser
        self.requests = 0
        self.missing = False
        self._token: str | None = None
        self._coming: asyncio.Future[tuple[list[Listed], str | None]] | None = None

    def start(self) -> None:
        """Asks for the first page now (`next` does, if not asked before)."""
        if self._coming is None and self.requests == 0:
            self._coming = asyncio.ensure_future(self._fetch(None))

    async def next(self) -> tuple[list[Listed], bool]:
        """The next page, and whether it is the last."""
        self.start()
        assert self._coming is not None, "next() after the last page"
        entries, token = await self._coming
        self._coming = None if token is None else asyncio.ensure_future(self._fetch(token))
        await asyncio.sleep(0)  # the next request goes out now, before this page is worked on
        return entries, token is None

    def close(self) -> None:
        """Stops a page under way (when the listing is left before its end)."""
        coming, self._coming = self._coming, None
        if coming is None:
            return
        if not coming.done():
            coming.cancel()
        elif not coming.cancelled():
            coming.exception()  # looked at: never logged as "never retrieved"

    async def _fetch(self, token: str | None) -> tuple[list[Listed], str | None]:
        pairs = [("continuation-token", token)] if token else []
        self.requests += 1
        body = await get_page(self.client, self.backend, self.bucket, self.prefix, pairs)
        if body is None:
            self.missing = True
            return [], None
        try:
            if self.parser is None:
                return parse(body, self.strip)
            loop = asyncio.get_running_loop()
            fields, token = await loop.run_in_executor(self.parser, parse_fields, body, self.strip)
            return list(map(_listed, fields)), token
        except ValueError as e:
            raise BackendError(f"{self.backend.name}'s listing of {self.bucket}: {e}") from None


async def get_page(
    client: BackendClient,
    backend: Backend,
    bucket: str,
    prefix: str,
    pairs: list[tuple[str, str]],
) -> bytes | None:
    """One ListObjectsV2 answer's body (keys url-encoded; `pairs` the other parameters), None
    when the backend lacks the bucket; BackendError for any other failure."""
    pairs = [("list-type", "2"), ("encoding-type", "url"), *pairs]
    if prefix:
        pairs.append(("prefix", prefix))
    query = sigv4.canonical_query(pairs)
    async with client.request(backend, "GET", bucket, query=query) as reply:
        body = await reply.read(MAX_PAGE)
    if reply.status == 404 and error_code(body) == "NoSuchBucket":
        return None
    if reply.status != 200:
        answer = f"{reply.status} {error_code(body) or ''}".strip()
        raise BackendError(f"{backend.name} answered {answer} to a listing of {bucket}")
    return body
