"""Talking to the backends: where a request goes on a backend and its re-signing
(`backends`, `retarget`, `uploads`), the proxy's own requests (`backend_client`), deadlines, and
one forwarded request's way over its candidates: the sans-IO `journey` decides, the `exchange`
carries it out on the flow.

May import: `addon.s3`, `addon.config`, `addon.auth`, `addon.mitm`.
"""
