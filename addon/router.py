"""One S3 request on its way: authenticate, classify, choose a backend, re-sign, fall back.

`Router.start` turns a client request into an `Exchange` (or raises the S3Error to answer);
the exchange aims the request at one backend after another and decides, from each answer,
whether to hand it to the client or to ask the next backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy import http

from addon import backends, fallback, sigv4, uploads
from addon.client_auth import ClientAuth, Verified
from addon.config import Backend
from addon.errors import S3Error, new_request_id, render
from addon.listing import BucketList
from addon.operations import (
    Operation,
    Route,
    Target,
    classify,
    parse_path,
    parse_virtual,
    virtual_bucket,
)
from addon.upstream_control import AbortUpload

log = logging.getLogger(__name__)

SMALL_BODY = 256 * 1024  # bodies up to this size are passed whole, bigger ones streamed


@dataclass
class Attempt:
    backend: Backend
    started: float
    status: int | None = None
    ms: float | None = None
    note: str = ""

    def __str__(self) -> str:
        result = self.note or str(self.status)
        return f"{self.backend.name} {result} {self.ms or 0:.0f}ms"


@dataclass
class Exchange:
    request_id: str
    operation: Operation
    target: Target
    method: str
    key_path: str  # canonical, without the bucket
    query: str  # canonical
    headers: list[tuple[str, str]]  # the client's, as received
    verified: Verified
    body: uploads.BodyPlan
    candidates: tuple[Backend, ...]
    attempts: list[Attempt] = field(default_factory=list)
    transducer: uploads.Transducer | None = None
    last_miss: http.Response | None = None
    bucket_list: BucketList = field(default_factory=BucketList)

    @property
    def has_next(self) -> bool:
        return len(self.attempts) < len(self.candidates)

    def aim_next(self, request: http.Request) -> None:
        """Point `request` at the next candidate backend, signed with its keys."""
        backend = self.candidates[len(self.attempts)]
        location = backends.locate(backend, self.target.bucket, self.key_path, self.query)
        headers, payload_hash = self.body.backend_request(
            backend, backends.forwarded_headers(backend, self.headers)
        )
        signed = backends.sign(
            backend, self.method, location, headers, self.verified.signed_headers, payload_hash
        )
        self.transducer = self.body.transducer(backend, signed)
        request.scheme, request.host, request.port = location.scheme, location.host, location.port
        request.path = location.path
        request.headers = http.Headers([(k.encode(), v.encode()) for k, v in headers])
        request.headers.update(signed)
        request.host_header = location.authority
        self.attempts.append(Attempt(backend, time.monotonic()))

    def body_stream(self, request: http.Request) -> bool | Callable[[bytes], list[bytes]]:
        """mitmproxy's `request.stream` for the body to the current backend.

        False for a small body of known length: read whole, it costs mitmproxy less, and
        `whole_body` checks it before anything is sent.
        """
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) <= SMALL_BODY:
            return False
        if self.transducer is None:
            return True
        return uploads.stream_callable(self.transducer, lambda e: AbortUpload(self.error(e)))

    def whole_body(self, request: http.Request) -> http.Response | None:
        """Check and rewrite a body read whole; the answer to send instead when it is refused."""
        if self.transducer is None:
            return None
        try:
            body = self.transducer.feed(request.raw_content or b"") + self.transducer.finish()
        except S3Error as e:
            self.attempts[-1].note = f"refused: {e.code}"
            return self.error(e)
        request.raw_content = body
        request.headers["content-length"] = str(len(body))
        return None

    def falls_back_at_headers(self, flow: http.HTTPFlow) -> bool:
        """A "not found" told by the status alone: re-aim now, without waiting for the body."""
        attempt = self.attempts[-1]
        attempt.ms = (time.monotonic() - attempt.started) * 1000
        response = flow.response
        assert response is not None
        attempt.status = response.status_code
        if not (self.operation.route is Route.FALLBACK and self.has_next):
            return False
        if not fallback.not_found_by_status(self.method, self.operation.name, attempt.status):
            return False
        self.last_miss = response  # its body is still read, into this object
        self.aim_next(flow.request)
        return True

    def may_stream(self, response: http.Response) -> bool:
        """Whether to stream the answer's body to the client.

        Not when the body decides what happens next (a 404 with a backend left, a listing to
        merge), and not when it is small: passing a small body whole costs mitmproxy less.
        """
        if self.operation.route is Route.ALL:
            return False
        if self.operation.route is Route.FALLBACK and response.status_code == 404 and self.has_next:
            return False
        length = response.headers.get("content-length", "")
        return not (length.isdigit() and int(length) <= SMALL_BODY)

    def answered(self, flow: http.HTTPFlow, unreachable: str | None) -> bool:
        """Record the backend's answer; re-aim `flow.request` and return True to ask the next."""
        attempt = self.attempts[-1]
        if attempt.ms is None:
            attempt.ms = (time.monotonic() - attempt.started) * 1000
        response = flow.response
        assert response is not None
        attempt.status = response.status_code
        if unreachable:
            attempt.note = "unreachable"
            log.warning("backend %s unreachable: %s", attempt.backend.name, unreachable)
        route = self.operation.route
        if route is Route.ALL:
            if not unreachable:
                self._collect_buckets(attempt, response)
            if self.has_next:
                self.aim_next(flow.request)
                return True
            flow.response = self._merged_buckets()
            return False
        if unreachable:
            # A fallback that is down is skipped; the primary being down is the client's answer.
            if route is Route.FALLBACK and len(self.attempts) > 1:
                if self.has_next:
                    self.aim_next(flow.request)
                    return True
                flow.response = self.last_miss
            else:
                flow.response = self.error(
                    S3Error("ServiceUnavailable", f"Backend {attempt.backend.name} is unreachable.")
                )
            return False
        if route is Route.FALLBACK and self.has_next:
            body = response.get_content(strict=False) or b""
            if fallback.is_not_found(self.method, response.status_code, body):
                self.last_miss = response
                self.aim_next(flow.request)
                return True
        return False

    def _collect_buckets(self, attempt: Attempt, response: http.Response) -> None:
        if response.status_code != 200:
            log.warning(
                "backend %s: ListBuckets answered %s", attempt.backend.name, response.status_code
            )
            return
        try:
            self.bucket_list.add(response.get_content(strict=False) or b"")
        except ValueError as e:
            attempt.note = "bad listing"
            log.warning("backend %s: ListBuckets answer unreadable: %s", attempt.backend.name, e)

    def _merged_buckets(self) -> http.Response:
        if not any(a.status == 200 and not a.note for a in self.attempts):
            return self.error(S3Error("ServiceUnavailable", "No backend could list its buckets."))
        return http.Response.make(
            200,
            self.bucket_list.render(),
            {"Content-Type": "application/xml", "x-amz-request-id": self.request_id},
        )

    def error(self, error: S3Error) -> http.Response:
        return error_response(error, self.method, self.resource, self.request_id)

    @property
    def resource(self) -> str:
        return "/" + "/".join(p for p in (self.target.bucket, self.target.key) if p is not None)

    def summary(self) -> str:
        """One line: operation, each backend tried (status, ms), which one answered."""
        tried = ", ".join(str(a) for a in self.attempts)
        return f"{self.operation.name} {self.resource} via [{tried}] answered by {self.answered_by}"

    @property
    def answered_by(self) -> str:
        if self.operation.route is Route.ALL:
            return "all"
        last = self.attempts[-1] if self.attempts else None
        if last is None or last.note:
            return "proxy"
        if self.last_miss is not None and last.status == 404:
            return last.backend.name + " (not found anywhere)"
        return last.backend.name


def error_response(error: S3Error, method: str, resource: str, request_id: str) -> http.Response:
    body = b"" if method.upper() == "HEAD" else render(error, resource, request_id)
    headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    return http.Response.make(error.status, body, headers)


class Router:
    """Turns client requests into exchanges, given the backends and the root keys' verifier."""

    def __init__(
        self, backend_list: tuple[Backend, ...], auth: ClientAuth, domains: tuple[str, ...] = ()
    ) -> None:
        self.backends = backend_list
        self.auth = auth
        self.domains = domains  # Host: bucket.<domain> is a virtual-hosted request

    def serves(self, host: str) -> bool:
        """Whether a request to `host` is S3 for us, when the proxy is not an endpoint itself
        (sidecar: regular mode, the application's own S3 endpoint)."""
        host = host.lower()
        return any(host == d or host.endswith("." + d) for d in self.domains)

    def start(self, request: http.Request) -> Exchange:
        """Authenticate and classify; raises S3Error for what must be refused."""
        raw_path, _, raw_query = request.path.partition("?")
        host = request.host_header or ""
        bucket = virtual_bucket(host, self.domains)
        verified = self.auth.verify(
            request.method,
            raw_path,
            raw_query,
            request.headers,
            host,
            v2_resource=raw_path if bucket is None else f"/{bucket}{raw_path}",
        )
        body = uploads.BodyPlan.of(verified, request.headers)
        pairs = sigv4.query_pairs(raw_query)
        # A presigned URL's signature is the root's: backends get header auth of their own.
        pairs = [(k, v) for k, v in pairs if k not in verified.auth_params]
        target = parse_path(raw_path) if bucket is None else parse_virtual(bucket, raw_path)
        operation = classify(
            request.method, target, [k for k, _ in pairs], "x-amz-copy-source" in request.headers
        )
        if operation is None:
            raise S3Error("MethodNotAllowed")
        path = sigv4.canonical_path(raw_path)
        if bucket is not None:
            key_path = path[1:]
        elif target.bucket is not None:
            key_path = path.lstrip("/").partition("/")[2]
        else:
            key_path = ""
        return Exchange(
            request_id=new_request_id(),
            operation=operation,
            target=target,
            method=request.method,
            key_path=key_path,
            query=sigv4.canonical_query(pairs),
            headers=list(request.headers.items(multi=True)),
            verified=verified,
            body=body,
            candidates=self.backends if operation.route is not Route.PRIMARY else self.backends[:1],
        )
