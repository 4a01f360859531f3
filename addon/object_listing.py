"""ListObjects (v1 and v2) over every backend that has the bucket, answered by the proxy.

What reads serve, listings show: the page is the merge (`listing_merge`) of each backend's own
listing, asked in the form that is right everywhere (ListObjectsV2 with StartAfter and
`encoding-type=url`, whatever the client asked), with S3's semantics rebuilt here: Prefix,
Delimiter and CommonPrefixes, MaxKeys (keys and prefixes together), Marker and NextMarker (v1;
NextMarker only with a delimiter), ContinuationToken (v2: opaque, signed with a key derived from
the root secret, so that any instance with the same config takes any other's), StartAfter,
EncodingType=url, FetchOwner, KeyCount.

A backend that has the bucket but cannot be listed fails the whole listing (503): a listing
silently missing keys would make `aws s3 sync --delete` delete the user's files.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_plus
from xml.sax.saxutils import escape

from mitmproxy import http

from addon import s3_xml, sigv4
from addon.backend_client import BackendClient, BackendError
from addon.config import Backend
from addon.errors import S3Error, error_response
from addon.journey import Attempt, error_code, printable
from addon.listing_merge import MAX_KEYS, Entry, Merge, Page
from addon.tombstones import TombstoneError, Tombstones

MAX_PAGE = 8 * 1024 * 1024  # 1,000 keys of 1,024 bytes, with their fields, are about 2 MB
_FIELDS = ("LastModified", "ETag", "ChecksumAlgorithm", "ChecksumType", "Size", "StorageClass")


@dataclass(frozen=True)
class ListingRequest:
    """What the client asked, in S3's terms."""

    v2: bool
    bucket: str
    prefix: str = ""
    delimiter: str = ""
    max_keys: int = MAX_KEYS
    start: str | None = None  # where the page starts: the marker, start-after or token's
    marker: str | None = None  # v1, as sent
    start_after: str | None = None  # v2, as sent
    token: str | None = None  # v2, as sent
    url_encoded: bool = False
    owner: bool = False

    @classmethod
    def parse(
        cls, v2: bool, bucket: str, pairs: list[tuple[str, str]], tokens: Tokens
    ) -> ListingRequest:
        query = dict(pairs)
        try:
            max_keys = int(query.get("max-keys", MAX_KEYS))
        except ValueError:
            max_keys = -1
        if max_keys < 0:
            raise S3Error(
                "InvalidArgument", "Argument maxKeys must be an integer between 0 and 2147483647"
            )
        encoding = query.get("encoding-type")
        if encoding not in (None, "url"):
            raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        token = query.get("continuation-token") if v2 else None
        marker = None if v2 else query.get("marker")
        start_after = query.get("start-after") if v2 else None
        start = marker if not v2 else start_after
        if token is not None:
            start = tokens.position(token, prefix, delimiter)
        return cls(
            v2=v2,
            bucket=bucket,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            start=start or None,
            marker=marker,
            start_after=start_after,
            token=token,
            url_encoded=encoding == "url",
            owner=not v2 or query.get("fetch-owner") == "true",
        )

    @property
    def starts_after_prefix(self) -> bool:
        """Whether the page starts after a common prefix (a NextMarker, or the last name of a
        previous page): a name whose first delimiter after the prefix is its end."""
        if self.start is None or not self.delimiter or not self.start.startswith(self.prefix):
            return False
        rest = self.start[len(self.prefix) :]
        return rest.endswith(self.delimiter) and rest.find(self.delimiter) == len(rest) - len(
            self.delimiter
        )

    def backend_query(self, start_after: str | None, wanted: int) -> str:
        pairs = [("list-type", "2"), ("encoding-type", "url")]
        pairs += [("max-keys", str(max(1, min(wanted, MAX_KEYS))))]
        pairs += [(k, v) for k, v in (("prefix", self.prefix), ("delimiter", self.delimiter)) if v]
        if start_after:
            pairs.append(("start-after", start_after))
        if self.owner:
            pairs.append(("fetch-owner", "true"))
        return sigv4.canonical_query(pairs)


class Tokens:
    """ContinuationTokens: where a page ended, signed so that a client cannot move it."""

    def __init__(self, root_secret: str) -> None:
        self.key = hmac.new(root_secret.encode(), b"s3-multi listing token", "sha256").digest()

    def make(self, after: str, prefix: str, delimiter: str) -> str:
        body = base64.urlsafe_b64encode(json.dumps([after, prefix, delimiter]).encode())
        return f"{body.decode()}.{self._mac(body)}"

    def position(self, token: str, prefix: str, delimiter: str) -> str:
        body, _, mac = token.encode().partition(b".")
        try:
            if not hmac.compare_digest(mac.decode(), self._mac(body)):
                raise ValueError("forged")
            after, token_prefix, token_delimiter = json.loads(base64.urlsafe_b64decode(body))
        except (ValueError, UnicodeDecodeError, TypeError):
            raise S3Error(
                "InvalidArgument", "The continuation token provided is incorrect"
            ) from None
        if (token_prefix, token_delimiter) != (prefix, delimiter):
            raise S3Error("InvalidArgument", "The continuation token provided is incorrect")
        return str(after)

    def _mac(self, body: bytes) -> str:
        return hmac.new(self.key, body, hashlib.sha256).hexdigest()[:32]


def parse_page(backend: int, body: bytes) -> Page:
    """One backend's ListBucketResult (v2, asked url-encoded); ValueError if it is not one."""
    document = s3_xml.root(body, "ListBucketResult")
    decode = unquote_plus if s3_xml.text(document, "EncodingType") == "url" else str
    entries = []
    for element in document:
        kind = s3_xml.local(element.tag)
        if kind == "Contents":
            present = [n for n in _FIELDS if s3_xml.child(element, n) is not None]
            fields = [(n, s3_xml.text(element, n)) for n in present]
            owner = s3_xml.child(element, "Owner")
            if owner is not None:
                fields += [("Owner.ID", s3_xml.text(owner, "ID"))]
                fields += [("Owner.DisplayName", s3_xml.text(owner, "DisplayName"))]
            key = decode(s3_xml.text(element, "Key", strip=False))
            entries.append(Entry(key, False, backend, tuple(fields)))
        elif kind == "CommonPrefixes":
            prefix = decode(s3_xml.text(element, "Prefix", strip=False))
            entries.append(Entry(prefix, True, backend))
    for prefixes in (False, True):
        names = [e.name for e in entries if e.prefix is prefixes]
        if names != sorted(names):
            # A merge relies on S3's order; SeaweedFS, for one, lists in directory order.
            raise ValueError("it lists keys out of S3's order (use `listing: primary`)")
    entries.sort(key=lambda e: e.name)
    return Page(entries, s3_xml.text(document, "IsTruncated").lower() == "true")


@dataclass
class ListingMerge:
    """One ListObjects request, answered from every backend's own listing."""

    request_id: str
    request: ListingRequest
    backends: tuple[Backend, ...]
    tokens: Tokens
    tombstones: Tombstones | None = None  # what deletes through the proxy hide
    attempts: list[Attempt] = field(default_factory=list)

    async def answer(self, client: BackendClient) -> http.Response:
        self.attempts = [Attempt(b, time.monotonic()) for b in self.backends]
        merge = Merge(
            len(self.backends),
            self.request.start,
            self.request.max_keys,
            after_prefix=self.request.starts_after_prefix,
        )
        found = [False] * len(self.backends)
        try:
            while not merge.complete:
                asked = merge.needs()
                wanted = merge.max_keys - len(merge.emitted)
                pages = await asyncio.gather(
                    *(self._page(client, i, merge.start_after(i), wanted) for i in asked)
                )
                for i, page in zip(asked, pages, strict=True):
                    if page is None:
                        merge.absent(i)
                    else:
                        found[i] = True
                        merge.add(i, await self._without_deleted(client, i, page))
                merge.advance()
        except S3Error as e:
            return self.error(e)
        except TombstoneError as e:
            message = f"The tombstones of deleted keys cannot be read: {e}"
            return self.error(S3Error("ServiceUnavailable", message))
        if not any(found):
            return self.error(S3Error("NoSuchBucket", extra={"BucketName": self.request.bucket}))
        return http.Response.make(
            200,
            render(self.request, merge, self.tokens),
            {"Content-Type": "application/xml", "x-amz-request-id": self.request_id},
        )

    async def _page(
        self, client: BackendClient, index: int, start_after: str | None, wanted: int
    ) -> Page | None:
        """The backend's next page, None if it does not have the bucket; raises the S3Error
        that fails the listing when it cannot be had."""
        attempt = self.attempts[index]
        query = self.request.backend_query(start_after, wanted)
        try:
            async with client.request(
                attempt.backend, "GET", self.request.bucket, query=query
            ) as reply:
                attempt.status = reply.status
                body = await reply.read(MAX_PAGE)
            if reply.status == 404 and error_code(body) == "NoSuchBucket":
                return None
            if reply.status != 200:
                raise ValueError(f"{reply.status} {error_code(body) or ''}".strip())
            page = parse_page(index, body)
            if start_after is not None and any(
                not e.prefix and e.name <= start_after for e in page.entries
            ):
                raise ValueError("it lists keys out of S3's order (use `listing: primary`)")
            return page
        except (BackendError, ValueError) as e:
            attempt.note = f"failed: {e}"
            message = f"Backend {attempt.backend.name} cannot be listed."
            raise S3Error("ServiceUnavailable", message) from None
        finally:
            attempt.ms = (time.monotonic() - attempt.started) * 1000

    async def _without_deleted(self, client: BackendClient, index: int, page: Page) -> Page:
        """A fallback's page without the copies tombstones hide (a copy written since, another
        ETag, shows), and without the common prefixes that then hold nothing."""
        if self.tombstones is None or index == 0:
            return page
        keys = [e.name for e in page.entries if not e.prefix]
        hides = await self.tombstones.hiding(self.request.bucket, keys)
        kept = []
        for entry in page.entries:
            if entry.prefix:
                if await self._holds_something(client, index, entry.name):
                    kept.append(entry)
            elif _shows(entry, hides, self.backends[index].name):
                kept.append(entry)
        return Page(kept, page.truncated)

    async def _holds_something(self, client: BackendClient, index: int, prefix: str) -> bool:
        """Whether a fallback's common prefix has a key that no tombstone hides (its keys are
        looked at only if tombstones are under it)."""
        assert self.tombstones is not None
        bucket, backend = self.request.bucket, self.backends[index]
        if not await self.tombstones.any_under(bucket, prefix):
            return True
        inner = ListingRequest(True, bucket, prefix=prefix, max_keys=MAX_KEYS)
        start: str | None = None
        while True:
            query = inner.backend_query(start, MAX_KEYS)
            async with client.request(backend, "GET", bucket, query=query) as reply:
                body = await reply.read(MAX_PAGE)
            if reply.status != 200:
                raise TombstoneError(f"{backend.name} answered {reply.status}")
            page = parse_page(index, body)
            hides = await self.tombstones.hiding(bucket, [e.name for e in page.entries])
            if any(_shows(e, hides, backend.name) for e in page.entries):
                return True
            if not page.truncated or not page.entries:
                return False
            start = page.entries[-1].name

    def error(self, error: S3Error) -> http.Response:
        return error_response(error, "GET", f"/{self.request.bucket}", self.request_id)

    def summary(self) -> str:
        tried = ", ".join(str(a) for a in self.attempts)
        name = "ListObjectsV2" if self.request.v2 else "ListObjects"
        return f"{name} /{printable(self.request.bucket)} via [{tried}] answered by all"


def _shows(entry: Entry, hides: dict[str, dict[str, str]], backend: str) -> bool:
    """A fallback's key shows unless a tombstone hides that very copy (its ETag)."""
    return hides.get(entry.name, {}).get(backend) != dict(entry.fields).get("ETag")


def render(request: ListingRequest, merge: Merge, tokens: Tokens) -> bytes:
    """The ListBucketResult S3 would give for this page."""
    encode = (lambda s: quote(s, safe="/")) if request.url_encoded else (lambda s: s)

    def element(name: str, value: str | None, encoded: bool = False) -> str:
        if value is None:
            return ""
        return f"<{name}>{escape(encode(value) if encoded else value)}</{name}>"

    keys = [e for e in merge.emitted if not e.prefix]
    prefixes = [e for e in merge.emitted if e.prefix]
    truncated = merge.truncated and bool(merge.emitted)
    head = [element("Name", request.bucket), element("Prefix", request.prefix, True)]
    if request.v2:
        head += [element("Delimiter", request.delimiter or None, True)]
        head += [element("MaxKeys", str(request.max_keys))]
        head += [element("EncodingType", "url" if request.url_encoded else None)]
        head += [element("KeyCount", str(len(merge.emitted)))]
        head += [element("IsTruncated", str(truncated).lower())]
        head += [element("ContinuationToken", request.token)]
        if truncated and merge.last is not None:
            next_token = tokens.make(merge.last, request.prefix, request.delimiter)
            head += [element("NextContinuationToken", next_token)]
        head += [element("StartAfter", request.start_after, True)]
    else:
        head += [element("Marker", request.marker or "", True)]
        if truncated and request.delimiter:
            head += [element("NextMarker", merge.last, True)]
        head += [element("MaxKeys", str(request.max_keys))]
        head += [element("Delimiter", request.delimiter or None, True)]
        head += [element("EncodingType", "url" if request.url_encoded else None)]
        head += [element("IsTruncated", str(truncated).lower())]
    contents = "".join(_contents(entry, request.owner, element) for entry in keys)
    common = "".join(
        f"<CommonPrefixes>{element('Prefix', e.name, True)}</CommonPrefixes>" for e in prefixes
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{s3_xml.S3_NS}">'
        f"{''.join(head)}{contents}{common}</ListBucketResult>"
    ).encode()


def _contents(entry: Entry, owner: bool, element) -> str:
    fields = dict(entry.fields)
    parts = [element("Key", entry.name, True)]
    parts += [element(name, fields.get(name)) for name in _FIELDS if name != "StorageClass"]
    if owner and "Owner.ID" in fields:
        parts.append(
            f"<Owner>{element('ID', fields['Owner.ID'])}"
            f"{element('DisplayName', fields.get('Owner.DisplayName'))}</Owner>"
        )
    parts.append(element("StorageClass", fields.get("StorageClass")))
    return f"<Contents>{''.join(parts)}</Contents>"
