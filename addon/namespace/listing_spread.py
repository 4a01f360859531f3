"""A bucket's listing spread over its directories, for `s3-multi check`: the same pages in the
same order as `ListingStream`'s, but several directories listed at once, where one listing
would go page after page, each waiting for the one before (its continuation token). A listing
of 20,000 keys on SeaweedFS is mostly that waiting.

The plan is one listing with delimiter "/" under the prefix. When it holds only keys, in one
page, it is the listing. When it holds only directories (CommonPrefixes), in one page, and at
least two, each directory is listed on its own and their
pages are handed over one directory after the other, in the order the plan listed them: the
backend's own order, so the pages come as its flat listing would give them, whichever order it
lists in (S3's byte order or SeaweedFS's path-segment order): the keys under a directory are
contiguous in both, and with no key beside the directories nothing falls between two of them.
Otherwise (keys beside directories, whose place among the directories only the backend's order
could say; more directories than a page; no directories) the listing is the flat one.

`AT_ONCE` directories are listed at a time, each holding at most two pages (the one handed over
and the next), so memory stays bounded as with one listing. What it costs: one more request per
backend (the plan) unless the plan is the listing, and each directory's last page, which a flat
listing may share with the next directory: at most one request more per directory.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor
from urllib.parse import unquote_plus

from addon.config.settings import Backend
from addon.namespace.listing_stream import Listed, ListingStream, get_page, parse
from addon.s3 import xml as s3_xml
from addon.upstream.backend_client import BackendClient, BackendError

AT_ONCE = 8  # directories listed at a time, per backend (as rclone's --checkers)


class SpreadListing:
    """`ListingStream`'s pages of `bucket` on `backend` under `prefix`, several directories
    listed at once when the bucket's first level is directories only."""

    def __init__(
        self,
        client: BackendClient,
        backend: Backend,
        bucket: str,
        prefix: str = "",
        parser: Executor | None = None,
        at_once: int = AT_ONCE,
    ) -> None:
        self.client, self.backend, self.bucket = client, backend, bucket
        self.prefix, self.parser, self.at_once = prefix, parser, at_once
        self.missing = False
        self.planned = 0  # requests of the plan
        self._parts: deque[ListingStream] | None = None  # the listings still to hand over
        self._waiting: deque[str] = deque()  # directories not asked yet
        self._whole: list[Listed] | None = None  # the plan's keys, when they are the listing

    @property
    def requests(self) -> int:
        return self.planned + sum(p.requests for p in self._parts or ())

    async def next(self) -> tuple[list[Listed], bool]:
        """The next page, and whether it is the last."""
        if self._parts is None:
            self._parts = deque(await self._plan())
            self._more()
            if self._whole is not None:
                return self._whole, True
        while self._parts:
            entries, last = await self._parts[0].next()
            if last:
                self._parts.popleft().close()
                self._more()
            if entries or not self._parts:
                return entries, not self._parts
        return [], True  # the plan found the bucket missing

    def close(self) -> None:
        """Stops the pages under way (when the listing is left before its end)."""
        for part in self._parts or ():
            part.close()
        self._waiting.clear()

    def _more(self) -> None:
        """Asks for the first pages of as many directories as may be listed at once."""
        assert self._parts is not None
        while self._waiting and len(self._parts) < self.at_once:
            self._parts.append(self._listing(self._waiting.popleft()))
        for part in self._parts:
            part.start()

    def _listing(self, prefix: str) -> ListingStream:
        return ListingStream(self.client, self.backend, self.bucket, prefix, parser=self.parser)

    async def _plan(self) -> list[ListingStream]:
        """The listings to hand over in turn: the directories', or the flat one alone."""
        self.planned += 1
        pairs = [("delimiter", "/")]
        body = await get_page(self.client, self.backend, self.bucket, self.prefix, pairs)
        if body is None:
            self.missing = True
            return []
        try:
            directories, keys, truncated = _shape(body)
            if not directories and not truncated:
                self._whole = parse(body)[0]
                return []
        except ValueError as e:
            raise BackendError(f"{self.backend.name}'s listing of {self.bucket}: {e}") from None
        if keys or truncated or len(directories) < 2:
            return [self._listing(self.prefix)]
        self._waiting.extend(directories)
        return []


def _shape(body: bytes) -> tuple[list[str], bool, bool]:
    """A delimited ListBucketResult's CommonPrefixes in the order listed, whether it has keys
    (Contents) and whether it is cut short."""
    document = s3_xml.root(body, "ListBucketResult")
    decode = unquote_plus if s3_xml.text(document, "EncodingType") == "url" else str
    directories, keys = [], False
    for element in document:
        name = s3_xml.local(element.tag)
        if name == "Contents":
            keys = True
        elif name == "CommonPrefixes":
            directories.append(decode(s3_xml.text(element, "Prefix", strip=False)))
    return directories, keys, s3_xml.text(document, "IsTruncated").lower() == "true"
