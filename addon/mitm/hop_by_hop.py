"""An upstream's answer as the client gets it: without the upstream's hop-by-hop headers.

`Connection`, the fields it names, and Keep-Alive, Proxy-Connection, TE and Upgrade are about
one connection (RFC 9110, 7.6.1): the backend's `Connection: close` (moto sends it on every
answer) means the backend closes its connection to the proxy, never that the client's
connection ends. mitmproxy passes them on as they are, and its HTTP/1 server closes the client's
connection after an answer that says `Connection: close`.

mitmproxy's HTTP/1 client layer (the backend's connection) and its server layer (the client's)
share one `Response` object, and each decides from its headers whether its own connection stays
open. So the client gets a copy of the answer's head without those headers (`for_client`), while
the backend's connection keeps the original and still closes when the backend said so (reused,
it would be dead). Transfer-Encoding and Content-Length stay whatever Connection names: they
frame the body, and mitmproxy frames the client's answer by them. What the proxy itself adds to
the client's answer after this (`Connection: close` on a refusal, during a drain) stays.
"""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.proxy.layers.http import ResponseHeaders

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "upgrade"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})


def for_client(event: ResponseHeaders) -> ResponseHeaders:
    """The same event, with a copy of its answer's head that the client's connection may
    have (the original stays the upstream connection's)."""
    response = event.response
    named = _named(response.headers)
    if not named:
        return event
    view = response.copy()
    for name in named:
        del view.headers[name]
    return ResponseHeaders(event.stream_id, view, event.end_stream)


def _named(headers: http.Headers) -> frozenset[str]:
    """The hop-by-hop headers present, in lower case: the fixed ones and those Connection names."""
    named = {
        token.strip().lower()
        for value in headers.get_all("connection")
        for token in value.split(",")
        if token.strip()
    }
    present = {name.lower() for name in headers}
    return ((HOP_BY_HOP | named) - _FRAMING) & present
