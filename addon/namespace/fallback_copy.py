"""Copies whose source only a fallback has: read there, written to the primary, streamed.

A copy is a write, so it goes to the primary, which copies on its own when it has the source
(one server-side copy, as before). When the primary answers that the source is missing, the
proxy looks for it on the fallbacks in order (a tombstoned copy is absent), checks the
`x-amz-copy-source-if-*` conditions against what it finds, and copies it itself: a GET from
that fallback streamed into a PUT on the primary (CopyObject, at most 5 GiB as in S3) or into
an UploadPart (UploadPartCopy, with `x-amz-copy-source-range`), in bounded memory whatever the
size. Metadata and content headers are carried over or replaced as `x-amz-metadata-directive`
says, tags as `x-amz-tagging-directive` says. The client gets S3's answer: a CopyObjectResult
(or CopyPartResult) with the new ETag.

The answer comes once the copy is done: a large copy may need a client read timeout longer than
its default.
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from urllib.parse import unquote

from mitmproxy import http

from addon.config.settings import Backend
from addon.namespace.hiding import Hides, hidden
from addon.namespace.object_meta import (
    described,
    describes_object,
    tagging_header,
    tags_of,
)
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.s3 import sigv4
from addon.s3 import xml as s3_xml
from addon.s3.errors import S3Error, error_code, error_response, new_request_id
from addon.upstream.backend_client import BackendClient, BackendError, Reply
from addon.upstream.request_bodies import Streamed
from addon.upstream.retarget import Plan

log = logging.getLogger(__name__)
MAX_COPY = 5 * 1024**3  # S3's most for CopyObject (larger objects: UploadPartCopy)
_NOT_FORWARDED = frozenset(
    {
        "x-amz-copy-source",
        "x-amz-copy-source-range",
        "x-amz-metadata-directive",
        "x-amz-tagging-directive",
        "x-amz-copy-source-if-match",
        "x-amz-copy-source-if-none-match",
        "x-amz-copy-source-if-modified-since",
        "x-amz-copy-source-if-unmodified-since",
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "host",
        "content-length",
        "content-md5",
        "expect",
        "date",
        "transfer-encoding",
    }
)


def source_of(header: str) -> tuple[str, str, bool] | None:
    """The copy source's bucket and key, and whether it names a version."""
    path, _, query = header.partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        return None
    return bucket, key, "versionId" in query


@dataclass
class CopyFromFallback:
    client: BackendClient
    primary: Backend
    fallbacks: tuple[Backend, ...]
    plan: Plan  # the client's copy, as the primary got it
    part: bool  # UploadPartCopy, not CopyObject
    tombstones: Tombstones | None = None

    async def __call__(self, flow: http.HTTPFlow) -> str:
        response = flow.response
        if response is None or response.status_code != 404:
            return ""
        if error_code(response.content or b"") not in ("NoSuchKey", "NoSuchBucket", None):
            return ""  # about something else than the source (NoSuchUpload, ...)
        headers = {k.lower(): v for k, v in self.plan.headers}
        source = source_of(headers.get("x-amz-copy-source", ""))
        if source is None or source[2]:
            return ""  # versions live on the primary only
        bucket, key, _ = source
        found = None
        try:
            found = await self._find(bucket, key)
            if found is None:
                return ""
            backend, head = found
            flow.response = await self._copy(backend, bucket, key, head, headers)
        except S3Error as e:
            flow.response = self._error(flow, e)
        except (BackendError, TombstoneError) as e:
            log.warning("copy of /%s/%s from a fallback failed: %s", bucket, key, e)
            message = f"The copy source could not be copied from a fallback: {e}"
            flow.response = self._error(flow, S3Error("ServiceUnavailable", message))
        return f"copied by the proxy from {found[0].name}" if found else ""

    async def _find(self, bucket: str, key: str) -> tuple[Backend, Reply] | None:
        """The first fallback that has the source (and no tombstone hides it), with its HEAD."""
        hides: dict[str, str] = {}
        if self.tombstones is not None:
            hides = (await self.tombstones.hiding(bucket, [key])).get(key, {})
        for backend in self.fallbacks:
            async with self.client.request(backend, "HEAD", bucket, sigv4.key_path(key)) as head:
                await head.read(0)
            if offers_source(hides, backend.name, head.status, head.header("etag")):
                return backend, head
        return None

    async def _copy(
        self, backend: Backend, bucket: str, key: str, head: Reply, asked: dict[str, str]
    ) -> http.Response:
        _check_conditions(head, asked)
        size = int(head.header("content-length") or 0)
        wanted = asked.get("x-amz-copy-source-range")
        get_headers: list[tuple[str, str]] = []
        if self.part and wanted:
            first, last = _range(wanted, size)
            get_headers.append(("range", f"bytes={first}-{last}"))
            size = last - first + 1
        elif not self.part and size > MAX_COPY:
            raise S3Error(
                "InvalidRequest",
                "The specified copy source is larger than the maximum allowable size for a "
                f"copy source: {MAX_COPY}",
            )
        put_headers = await self._destination_headers(backend, bucket, key, head, asked)
        plan = self.plan
        async with self.client.request(
            backend, "GET", bucket, sigv4.key_path(key), headers=get_headers
        ) as source:
            if source.status not in (200, 206):
                raise BackendError(f"{backend.name} answered {source.status} to the GET")
            async with self.client.request(
                self.primary,
                "PUT",
                plan.bucket,
                plan.key_path,
                plan.query,
                put_headers,
                body=Streamed(source.pieces(), size),
            ) as written:
                answer = await written.read(64 * 1024)
        if written.status != 200:
            return http.Response.make(written.status, answer, {"Content-Type": "application/xml"})
        return _result(self.part, written.header("etag") or "")

    async def _destination_headers(
        self, backend: Backend, bucket: str, key: str, head: Reply, asked: dict[str, str]
    ) -> list[tuple[str, str]]:
        """What the written object carries: the source's metadata and content headers, or the
        request's (REPLACE); its tags, or the request's; the rest of the request's headers."""
        keep = [(k, v) for k, v in asked.items() if k not in _NOT_FORWARDED]
        if self.part:
            return [(k, v) for k, v in keep if not describes_object(k)]
        if asked.get("x-amz-metadata-directive", "COPY").upper() != "REPLACE":
            keep = [(k, v) for k, v in keep if not describes_object(k)]
            keep += described(head.headers)
        if asked.get("x-amz-tagging-directive", "COPY").upper() != "REPLACE":
            keep = [(k, v) for k, v in keep if k != "x-amz-tagging"]
            keep += tagging_header(await tags_of(self.client, backend, bucket, key))
        return keep

    def _error(self, flow: http.HTTPFlow, error: S3Error) -> http.Response:
        resource = f"/{self.plan.bucket}/{unquote(self.plan.key_path)}"
        return error_response(error, flow.request.method, resource, new_request_id())


def offers_source(hides: Hides | None, backend: str, status: int, etag: str | None) -> bool:
    """Whether a fallback's answer to the HEAD of a copy source is a source to copy: it has the
    key (200), and no tombstone hides that copy (`hiding`)."""
    return status == 200 and not hidden(hides, backend, etag)


def _range(header: str, size: int) -> tuple[int, int]:
    """x-amz-copy-source-range: bytes=first-last, within the source."""
    spec = header.strip().removeprefix("bytes=")
    first_text, _, last_text = spec.partition("-")
    if not (first_text.isdigit() and last_text.isdigit()):
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
        )
    first, last = int(first_text), int(last_text)
    if first > last or last >= size:
        message = f"The specified copy range is invalid for the source object size: {size}"
        raise S3Error("InvalidRequest", message)
    return first, last


def _check_conditions(head: Reply, asked: dict[str, str]) -> None:
    """S3's x-amz-copy-source-if-* against the source found: 412 when one fails."""
    etag = (head.header("etag") or "").strip()
    modified = _http_time(head.header("last-modified"))
    match = asked.get("x-amz-copy-source-if-match")
    none_match = asked.get("x-amz-copy-source-if-none-match")
    unmodified_since = _http_time(asked.get("x-amz-copy-source-if-unmodified-since"))
    modified_since = _http_time(asked.get("x-amz-copy-source-if-modified-since"))

    def failed(condition: str) -> S3Error:
        return S3Error("PreconditionFailed", extra={"Condition": condition})

    if match is not None and etag not in _etags(match):
        raise failed("x-amz-copy-source-If-Match")
    if none_match is not None and etag in _etags(none_match):
        raise failed("x-amz-copy-source-If-None-Match")
    modified = modified or 0.0
    if match is None and unmodified_since is not None and modified > unmodified_since:
        raise failed("x-amz-copy-source-If-Unmodified-Since")
    if none_match is None and modified_since is not None and 0 < modified <= modified_since:
        raise failed("x-amz-copy-source-If-Modified-Since")


def _etags(header: str) -> set[str]:
    values = {v.strip() for v in header.split(",")}
    return values | {f'"{v.strip(chr(34))}"' for v in values}


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _result(part: bool, etag: str) -> http.Response:
    root = "CopyPartResult" if part else "CopyObjectResult"
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{s3_xml.S3_NS}">'
        f"<LastModified>{now}</LastModified><ETag>{s3_xml.escape(etag)}</ETag></{root}>"
    ).encode()
    return http.Response.make(200, body, {"Content-Type": "application/xml"})
