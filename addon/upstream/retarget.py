"""The one place that changes a client's request: aimed at a backend, signed with its keys.

Everything else reads the request; what the client sent is kept aside (`Plan`) so that every
backend gets the same request, each in its own addressing and signed with its own keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mitmproxy import http

from addon.auth.checks import Verified
from addon.config.settings import Backend
from addon.s3.errors import S3Error
from addon.upstream import backends, uploads

SMALL_BODY = 256 * 1024  # bodies up to this size are read whole (cheaper), bigger ones streamed


@dataclass(frozen=True)
class Plan:
    """The client's request in the form every backend gets it."""

    method: str
    bucket: str | None
    key_path: str  # canonical, without the bucket
    query: str  # canonical, without presigning parameters
    headers: tuple[tuple[str, str], ...]  # the client's, as received
    verified: Verified
    body: uploads.BodyPlan


def aim(request: http.Request, backend: Backend, plan: Plan) -> uploads.Transducer | None:
    """Point `request` at `backend`, signed with its keys; returns what must check and
    rewrite the body for it (None: the body, if any, goes as it is)."""
    location = backends.locate(backend, plan.bucket, plan.key_path, plan.query)
    headers, payload_hash = plan.body.backend_request(
        backend, backends.forwarded_headers(backend, plan.headers)
    )
    signed = backends.sign(
        backend, plan.method, location, headers, plan.verified.signed_headers, payload_hash
    )
    request.method = plan.method
    request.scheme, request.host, request.port = location.scheme, location.host, location.port
    request.path = location.path
    request.headers = http.Headers([(k.encode(), v.encode()) for k, v in headers])
    request.headers.update(signed.headers)
    request.host_header = location.authority
    return plan.body.transducer(backend, signed)


def stream_body(
    request: http.Request,
    transducer: uploads.Transducer | None,
    on_error: Callable[[S3Error], Exception],
    on_data: Callable[[], None],
) -> bool:
    """Set how the body goes upstream; True when it is read whole first (a small body of known
    length: cheaper for mitmproxy, and checked before anything is sent)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) <= SMALL_BODY:
        request.stream = False
        return True
    request.stream = uploads.stream_callable(transducer or uploads.Passthrough(), on_error, on_data)
    return False


def check_whole_body(request: http.Request, transducer: uploads.Transducer) -> None:
    """A body read whole, checked and re-framed for its backend; raises S3Error to refuse."""
    body = transducer.feed(request.raw_content or b"") + transducer.finish()
    request.raw_content = body
    request.headers["content-length"] = str(len(body))


def hold_off(request: http.Request) -> None:
    """A request about to be refused: its body must never be read (nor invited by a
    100 Continue), whatever its size."""
    request.stream = True
    request.headers.pop("expect", None)
