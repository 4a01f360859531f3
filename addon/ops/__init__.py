"""Running it: requests in flight and the SIGTERM drain, metrics, the status paths (health,
readiness, metrics), the workers of `s3-multi --workers`, and the users source polled from the
metaBucket.

May import: everything below it (`addon.s3` to `addon.check`).
"""
