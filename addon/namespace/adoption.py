"""A bucket that only a fallback has, written to: the primary takes it on.

In one namespace a bucket exists if any backend has it: HeadBucket and listings say so. But
writes go to the primary alone, and the primary answers NoSuchBucket; a client that saw the
bucket (pyarrow's create_dir asks HeadBucket, then writes) would fail for good. So when a write
is answered NoSuchBucket and a fallback has the bucket, the proxy creates it on the primary
(in the primary's region) and sends the write again when it has no body (CreateMultipartUpload,
a copy, a delete); a write whose body has gone by is answered 503, which SDKs retry, and the
retry finds the bucket. The write itself never goes anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from addon.config.settings import DEFAULT_REGION, Backend
from addon.namespace.own_writes import BUCKET, OwnWrite, nobody
from addon.s3.errors import S3Error, error_code, error_response, new_request_id
from addon.upstream import backends
from addon.upstream.backend_client import BackendClient, BackendError
from addon.upstream.retarget import Plan

if TYPE_CHECKING:  # imported where used: the commands (check, migrate) never need it
    from mitmproxy import http

log = logging.getLogger(__name__)
_MAX_BODY = 64 * 1024
_MAX_ANSWER = 1024 * 1024  # a bodiless write's answer (CopyObjectResult, an upload id) is small
WRITES = frozenset({"PUT", "POST", "DELETE"})
NOT_ADOPTED = frozenset({"CreateBucket", "DeleteBucket"})


@dataclass
class AdoptBucket:
    client: BackendClient
    primary: Backend
    fallbacks: tuple[Backend, ...]
    plan: Plan  # the write, to send again
    landed: OwnWrite = nobody  # told of the bucket created

    async def __call__(self, flow: http.HTTPFlow) -> str:
        response = flow.response
        if response is None or response.status_code != 404:
            return ""
        if error_code(response.content or b"") != "NoSuchBucket":
            return ""
        try:
            if not await self._on_a_fallback():
                return ""
            await create_bucket(self.client, self.primary, self.bucket)
        except (BackendError, S3Error) as e:
            log.warning("bucket %s not taken on by the primary: %s", self.bucket, e)
            return ""
        self.landed(BUCKET, self.bucket, "")
        if not flow.request.raw_content and not flow.request.stream:  # it had no body at all
            try:
                flow.response = await self._again()
                return "bucket created on the primary, the write sent again"
            except BackendError as e:
                log.warning("%s not sent again: %s", flow.request.method, e)
        message = (
            f"The bucket {self.bucket} was on a fallback only; it is now on the primary "
            "too: retry the request."
        )
        flow.response = error_response(
            S3Error("ServiceUnavailable", message),
            flow.request.method,
            f"/{self.bucket}",
            new_request_id(),
        )
        return "bucket created on the primary, to be retried"

    @property
    def bucket(self) -> str:
        assert self.plan.bucket is not None
        return self.plan.bucket

    async def _again(self) -> http.Response:
        """The bodiless write, now that the primary has the bucket."""
        plan = self.plan
        headers = backends.forwarded_headers(self.primary, plan.headers)
        async with self.client.request(
            self.primary,
            plan.method,
            self.bucket,
            plan.key_path,
            plan.query,
            headers,
            signed_headers=plan.verified.signed_headers,
        ) as reply:
            body = await reply.read(_MAX_ANSWER)
        fields = [(k.encode(), v.encode()) for k, v in reply.headers]
        from mitmproxy import http  # see the imports above

        return http.Response.make(reply.status, body, http.Headers(fields))

    async def _on_a_fallback(self) -> bool:
        async def has(backend: Backend) -> bool:
            async with self.client.request(backend, "HEAD", self.bucket) as reply:
                await reply.read(0)
                return reply.status == 200

        return any(await asyncio.gather(*(has(b) for b in self.fallbacks)))


async def create_bucket(client: BackendClient, primary: Backend, bucket: str) -> None:
    """The bucket on the primary, in the primary's region (there already: fine)."""
    body = b""
    if primary.region != DEFAULT_REGION:
        body = (
            "<CreateBucketConfiguration><LocationConstraint>"
            f"{primary.region}</LocationConstraint></CreateBucketConfiguration>"
        ).encode()
    async with client.request(primary, "PUT", bucket, body=body) as reply:
        answer = await reply.read(_MAX_BODY)
    if reply.status != 200 and error_code(answer) != "BucketAlreadyOwnedByYou":
        raise S3Error("ServiceUnavailable", f"CreateBucket answered {reply.status}")
