"""mitmproxy's private API, all of it and nothing else: the wrapped `HttpStream` methods that
let a flow's policy fall back, refuse, abort and time out (`policy`, `http_stream`,
`stream_actions`), an upstream's hop-by-hop headers kept from the client (`hop_by_hop`), the
bounded client request head (`client_heads`), connections that end as ordered and upstream
answers heard before a reset (`closing`), client connections counted and closed when idle
(`client_conns`), the shared listening port of the workers (`shared_port`), connecting in
bounded time (`connect_timeouts`), the `s3-multi` command's own master (`master`) with its
cached hook dispatch (`dispatch`) and mitmproxy's debug-only checks off (`debug_checks`), and
the version pin they were read for (`install`).
README.md here says what each private name is used for and what to re-check on an upgrade;
tests/unit/mitm/test_fingerprints.py fingerprints them.

May import: the layers before it, and uses none: what it needs (limits, timeouts, policies) is
passed in by the layers above, the only way they reach mitmproxy's internals.
"""
