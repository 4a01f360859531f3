"""The proxy's own writes to the primary, and who hears of them.

Besides the clients' writes, the proxy writes to the primary itself: a copy on read, a copy made
by the migration drain, a copy whose source only a fallback had, a bucket taken on from a
fallback. Replicas must get those too (`addon.replication`), but the writers sit below
replication and do not know it: each is given an `OwnWrite` to tell, `nobody` by default.
"""

from __future__ import annotations

from collections.abc import Callable

OBJECT = "object"  # the key's object (written, or copied)
BUCKET = "bucket"  # the bucket (created)

# (what: OBJECT or BUCKET, bucket, key: "" for a bucket)
OwnWrite = Callable[[str, str, str], None]


def nobody(what: str, bucket: str, key: str) -> None:
    """No one hears (no replicas)."""
