"""The one place that changes a client's request: aimed at a backend, signed with its keys.

Everything else reads the request; what the client sent is kept aside (`Plan`) so that every
backend gets the same request, each in its own addressing and signed with its own keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from addon.auth.checks import Verified
from addon.config.settings import Backend
from addon.s3.errors import S3Error
from addon.upstream import backends, uploads

if TYPE_CHECKING:  # imported where used: the commands (check, migrate) never need it
    from mitmproxy import http

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
    body: uploads.Body


def aim(request: http.Request, backend: Backend, plan: Plan) -> uploads.Transducer | None:
    """Point `request` at `backend`, signed with its keys; returns what must check and
    rewrite the body for it (None: the body, if any, goes as it is)."""
    from mitmproxy import http  # see the imports above

    location = backends.locate(backend, plan.bucket, plan.key_path, plan.query)
    headers, payload_hash = plan.body.backend_request(
        backend, backends.forwarded_headers(backend, plan.headers)
    )
    request.method = plan.method
    if plan.body.signs_headers:
        signed = backends.sign(
            backend, plan.method, location, headers, plan.verified.signed_headers, payload_hash
        )
        # The headers first, without Host: the host and port setters then have no Host to
        # rewrite, and Host is set once, last (as a Headers.update of the signature's headers
        # would leave them, built in one pass).
        request.headers = http.Headers(_with_signature(headers, signed.headers))
    else:  # a browser form: the form is signed, not the request
        signed = None
        request.headers = http.Headers([(k.encode(), v.encode()) for k, v in headers])
    request.scheme, request.host, request.port = location.scheme, location.host, location.port
    request.path = location.path
    request.host_header = location.authority
    return plan.body.transducer(backend, signed)


def _with_signature(
    headers: list[tuple[str, str]], signature: dict[str, str]
) -> list[tuple[bytes, bytes]]:
    """`headers` with the signature's set as `Headers.update` sets them: a header of the same
    name (any case) takes the value in its place, its repeats go, a new one is added last."""
    pending = {name.lower(): (name, value) for name, value in signature.items()}
    placed: set[str] = set()
    fields = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in pending:
            if lowered not in placed:
                placed.add(lowered)
                fields.append((name.encode(), pending[lowered][1].encode()))
            continue
        fields.append((name.encode(), value.encode()))
    for lowered, (name, value) in pending.items():
        if lowered not in placed:
            fields.append((name.encode(), value.encode()))
    return fields


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
