"""A listing's request and pages, sans-IO: what the client asked (`ListingRequest`), where a
page ended (`Tokens`), one backend's answer read (`page_of`: its page, no bucket, its error for
the client, or unusable), and the client's page written (`render`) with S3's fields in S3's
order."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

from addon.namespace.listing_merge import MAX_KEYS, Entry, Merge, Page
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import S3Error, error_code

_FIELDS = ("LastModified", "ETag", "ChecksumAlgorithm", "ChecksumType", "Size", "StorageClass")
_BEFORE_OWNER = tuple(name for name in _FIELDS if name != "StorageClass")
# What `encoding-type=url` encodes, by version (v2 True), besides keys and common prefixes:
# ListObjectsV2's EncodingType documentation names Delimiter, Prefix and StartAfter; in v1 AWS
# encodes Delimiter, Marker and NextMarker, and returns Prefix as sent (botocore's
# decode_list_object and decode_list_object_v2 decode exactly these).
_URL_ENCODED = {
    True: frozenset({"Delimiter", "Prefix", "StartAfter"}),
    False: frozenset({"Delimiter", "Marker", "NextMarker"}),
}


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
        if token:  # an empty one is none, echoed (ceph/s3-tests' ..._continuationtoken_empty)
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


class OutOfOrder(ValueError):
    """A backend lists keys out of S3's order, so it cannot be merged: how it is configured
    (`listing: primary`), not an outage."""


class Refusal(Exception):
    """A backend's S3 error to a page request that is meant for the client (a 4xx: a bucket
    policy's AccessDenied, ...): the listing's answer as the backend gave it, as a read's is."""

    def __init__(self, backend: int, status: int, body: bytes) -> None:
        super().__init__(f"{status} {error_code(body)}")
        self.backend, self.status, self.body = backend, status, body


def page_of(backend: int, status: int, body: bytes, start_after: str | None) -> Page | None:
    """A backend's answer to a page request from `start_after`: its page; None if it does not
    have the bucket; raises Refusal for its S3 error meant for the client, ValueError for what
    makes the listing impossible (a 5xx, what is not S3's, a page out of S3's order)."""
    code = error_code(body)
    if status == 404 and code == "NoSuchBucket":
        return None
    if 400 <= status < 500 and code:
        raise Refusal(backend, status, body)
    if status != 200:
        raise ValueError(f"{status} {code or ''}".strip())
    page = parse_page(backend, body)
    if start_after is not None and any(
        not e.prefix and e.name <= start_after for e in page.entries
    ):
        raise OutOfOrder("it lists keys out of S3's order (use `listing: primary`)")
    return page


def parse_page(backend: int, body: bytes) -> Page:
    """One backend's ListBucketResult (v2, asked url-encoded); ValueError if it is not one.

    One pass over the document, each entry made once: a listing of a hundred keys over two
    backends spent a third of its CPU here."""
    document = s3_xml.root(body, "ListBucketResult")
    found: list[tuple[str, bool, tuple[tuple[str, str], ...]]] = []
    top: dict[str, str] = {}  # the page's own fields, wherever they come
    for element in document:
        kind = _local(element.tag)
        if kind == "Contents":
            texts: dict[str, str] = {}  # the first child of each name, its text
            owner: ET.Element | None = None
            for child in element:
                name = _local(child.tag)
                if name == "Owner":
                    owner = child if owner is None else owner
                elif name not in texts:
                    texts[name] = child.text or ""
            fields = [(n, texts[n].strip()) for n in _FIELDS if n in texts]
            if owner is not None:
                ids = {_local(c.tag): c.text or "" for c in reversed(owner)}  # the first wins
                fields.append(("Owner.ID", ids.get("ID", "").strip()))
                fields.append(("Owner.DisplayName", ids.get("DisplayName", "").strip()))
            found.append((texts.get("Key", ""), False, tuple(fields)))
        elif kind == "CommonPrefixes":
            found.append((s3_xml.text(element, "Prefix", strip=False), True, ()))
        else:
            top.setdefault(kind, s3_xml.value(element))
    decoded = top.get("EncodingType") == "url"
    entries = [
        Entry(unquote_plus(name) if decoded else name, prefix, backend, fields)
        for name, prefix, fields in found
    ]
    for prefixes in (False, True):
        names = [e.name for e in entries if e.prefix is prefixes]
        if names != sorted(names):
            # A merge relies on S3's order; SeaweedFS, for one, lists in directory order.
            raise OutOfOrder("it lists keys out of S3's order (use `listing: primary`)")
    entries.sort(key=_name)
    return Page(entries, top.get("IsTruncated", "").lower() == "true")


_LOCAL_NAMES: dict[str, str] = {}  # a tag with its namespace -> its local name, for a few tags


def _local(tag: str) -> str:
    name = _LOCAL_NAMES.get(tag)
    if name is None:
        name = s3_xml.local(tag)
        if len(_LOCAL_NAMES) < 64:  # bounded: a backend chooses the tags it sends
            _LOCAL_NAMES[tag] = name
    return name


def _name(entry: Entry) -> str:
    return entry.name


def render(request: ListingRequest, merge: Merge, tokens: Tokens) -> bytes:
    """The ListBucketResult S3 would give for this page."""
    encoded = _URL_ENCODED[request.v2] if request.url_encoded else frozenset()

    def element(name: str, value: str | None, key: bool = False) -> str:
        """`key`: a key or a common prefix, URL-encoded whenever the client asked for it."""
        if value is None:
            return ""
        if name in encoded or (key and request.url_encoded):
            value = quote(value, safe="/")
        return f"<{name}>{s3_xml.escape(value)}</{name}>"

    keys = [e for e in merge.emitted if not e.prefix]
    prefixes = [e for e in merge.emitted if e.prefix]
    truncated = merge.truncated and bool(merge.emitted)
    head = [element("Name", request.bucket), element("Prefix", request.prefix)]
    if request.v2:
        head += [element("Delimiter", request.delimiter or None)]
        head += [element("MaxKeys", str(request.max_keys))]
        head += [element("EncodingType", "url" if request.url_encoded else None)]
        head += [element("KeyCount", str(len(merge.emitted)))]
        head += [element("IsTruncated", str(truncated).lower())]
        head += [element("ContinuationToken", request.token)]
        if truncated and merge.last is not None:
            next_token = tokens.make(merge.last, request.prefix, request.delimiter)
            head += [element("NextContinuationToken", next_token)]
        head += [element("StartAfter", request.start_after)]
    else:
        head += [element("Marker", request.marker or "")]
        if truncated and request.delimiter:
            head += [element("NextMarker", merge.last)]
        head += [element("MaxKeys", str(request.max_keys))]
        head += [element("Delimiter", request.delimiter or None)]
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
    """One key's <Contents>: the fields as `element` writes them, a call per field saved."""
    fields = dict(entry.fields)
    parts = [element("Key", entry.name, True)]
    for name in _BEFORE_OWNER:
        value = fields.get(name)
        if value is not None:
            parts.append(f"<{name}>{s3_xml.escape(value)}</{name}>")
    if owner and "Owner.ID" in fields:
        parts.append(
            f"<Owner>{element('ID', fields['Owner.ID'])}"
            f"{element('DisplayName', fields.get('Owner.DisplayName'))}</Owner>"
        )
    storage_class = fields.get("StorageClass")
    if storage_class is not None:
        parts.append(f"<StorageClass>{s3_xml.escape(storage_class)}</StorageClass>")
    return f"<Contents>{''.join(parts)}</Contents>"
