"""Talking to the backends: where a request goes on a backend and its re-signing
(`backends`, `retarget`, `uploads`, a browser form's `form_upload`), the proxy's own requests
(`backend_client`), deadlines, which backends are up (`health`: down-marking and its prober),
and one forwarded request's way over its candidates: the sans-IO `journey` decides (its
`attempts` and verdicts; the outage rules of `failover`), the `exchange` carries it out on the
flow.

May import: `addon.s3`, `addon.config`, `addon.auth`, `addon.mitm`.
"""
