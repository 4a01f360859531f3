"""What the proxy answers a client itself, before any backend is asked: a request refused with an
S3 error (`refuse`), a request head too large or too slow to arrive (`refuse_head`, given to
`addon.mitm.client_heads`), and how such an answer shows in flows (`shown_as_gateway`)."""

from __future__ import annotations

import logging

from mitmproxy import http
from mitmproxy.proxy.mode_specs import ReverseMode

from addon.mitm import client_heads, policy
from addon.ops import metrics
from addon.s3.errors import S3Error, error_response, new_request_id
from addon.upstream import retarget

log = logging.getLogger("s3multi")


def refuse(flow: http.HTTPFlow, error: S3Error, where: str, close: bool = False) -> None:
    """Answer `flow` with `error` (about resource `where`) in place of connecting to a backend,
    before any body is read; `close`: the connection closes after it."""
    answer = error_response(error, flow.request.method, where, new_request_id())
    if close and not flow.request.is_http2:
        answer.headers["Connection"] = "close"
    policy.manage(flow, policy.AnswerInstead(answer))
    retarget.hold_off(flow.request)
    shown_as_gateway(flow)
    flow.comment = f"refused: {error.code}"
    metrics.refused(error.code)


def refuse_head(reason: str, peer: object) -> http.Response:
    """The answer to a request head that is too large or too slow to arrive (the connection
    closes after it)."""
    if reason == client_heads.TOO_LARGE:
        limit = str(client_heads.HeadLimits.max_bytes)
        error = S3Error("RequestHeaderSectionTooLarge", extra={"MaxSizeAllowed": limit})
    else:
        error = S3Error("RequestTimeout")
    answer = error_response(error, "GET", "/", new_request_id())
    answer.headers["Connection"] = "close"
    log.warning("client %s refused: %s (its request head is %s)", peer, error.code, reason)
    return answer


def shown_as_gateway(flow: http.HTTPFlow) -> None:
    """A request the proxy answers itself (a refusal, a merged listing, a status path) shows
    the gateway's own address, where the client sent it: never reverse mode's placeholder
    target, which nothing contacts. What the client sent as its Host stays."""
    sockname = flow.client_conn.sockname
    if not isinstance(flow.client_conn.proxy_mode, ReverseMode) or not sockname or not sockname[1]:
        return
    request = flow.request
    host_header = request.host_header
    request.scheme = "https" if flow.client_conn.tls_established else "http"
    request.host, request.port = sockname[0], sockname[1]
    request.host_header = host_header
