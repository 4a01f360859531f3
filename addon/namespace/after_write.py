"""What a delete through the proxy does once the primary has answered it (see `tombstones`): it
buries the fallbacks' copies. Other writes never touch tombstones: a tombstone is read only
after the primary missed the key, so it cannot hide a copy the primary has, and a PUT stays one
request to the primary."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mitmproxy import http

from addon.namespace.tombstones import Known, TombstoneError, Tombstones
from addon.s3 import xml as s3_xml
from addon.s3.errors import S3Error, error_response
from addon.upstream.backend_client import BackendError

log = logging.getLogger(__name__)


def deleted_keys(request_body: bytes, response_body: bytes) -> list[str]:
    """The keys a DeleteObjects removed: those it asked for (without a version) and that its
    answer does not list as errors (a Quiet answer lists errors only)."""
    try:
        asked = s3_xml.root(request_body, "Delete")
        answered = s3_xml.root(response_body, "DeleteResult")
    except ValueError:
        return []
    errors = {
        s3_xml.text(e, "Key", strip=False) for e in answered if s3_xml.local(e.tag) == "Error"
    }
    keys = []
    for item in asked:
        if s3_xml.local(item.tag) != "Object" or s3_xml.child(item, "VersionId") is not None:
            continue
        key = s3_xml.text(item, "Key", strip=False)
        if key not in errors:
            keys.append(key)
    return keys


@dataclass
class AfterDelete:
    """What a delete through the proxy does once the primary has answered it, before the client
    hears: it buries the fallback copies. If that fails, the client is told (503), so that it
    tries again: a delete that did not stick must not look as if it had."""

    tombstones: Tombstones
    operation: str
    bucket: str
    key: str | None
    known: Known | None = None  # what the replicas' deletes found (`Tombstones.bury`)

    async def __call__(self, flow: http.HTTPFlow) -> str:
        """Settle the flow's answer; returns what was done, for the flow's summary."""
        response = flow.response
        if response is None or not 200 <= response.status_code < 300:
            return ""
        try:
            known = self.known or (lambda key: {})
            if self.operation == "DeleteObject" and self.key is not None:
                await self.tombstones.bury(self.bucket, [self.key], known)
                return "tombstone checked"
            if self.operation == "DeleteObjects":
                keys = deleted_keys(flow.request.raw_content or b"", response.content or b"")
                await self.tombstones.bury(self.bucket, keys, known)
                return f"tombstones checked for {len(keys)} keys"
        except (TombstoneError, BackendError) as e:
            log.warning("%s /%s: tombstones not settled: %s", self.operation, self.bucket, e)
            error = S3Error(
                "ServiceUnavailable",
                f"The primary took the {self.operation}, but its tombstone could not be "
                "settled; try again.",
            )
            flow.response = error_response(
                error,
                flow.request.method,
                f"/{self.bucket}",
                response.headers.get("x-amz-request-id", ""),
            )
            return "tombstone failed"
        return ""


BURIES = frozenset({"DeleteObject", "DeleteObjects"})  # deletes after which one may be written
