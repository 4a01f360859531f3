"""The one rule for "does this tombstone hide that copy": every path that may serve, list, copy
or keep a fallback's copy of a key asks `hidden`.

A tombstone (`tombstones`) records, for each fallback that held the key when it was deleted
through the proxy, the ETag of the copy it held. That copy is hidden, and only that one: a copy
written there since (another ETag) shows again. An answer that names no ETag (a sub-resource's,
or an empty one) is hidden when its backend's copy is. A copy the proxy made of a hidden copy
(on the primary, by copy-on-read or the drain, landing while the delete went on) names its
source in x-amz-meta-s3multi-source-etag, and is hidden through it. The primary's own copy is
never named in a tombstone: the proxy only reads a tombstone after the primary missed the key.

A replica (`addon.replication`) gets a delete before its client hears; one that missed it
(down, failing) is named with ANY, "*": whatever copy it holds is hidden, until the outbox's
repair deletes it there and the pruner removes the entry. Asked with ANY for the ETag, `hidden`
says whether whatever copy a backend holds is hidden: a read does not ask that backend at all.
"""

from __future__ import annotations

from collections.abc import Mapping

from addon.s3.etags import same_etag
from addon.upstream.attempts import ANY_COPY as ANY

Hides = Mapping[str, str]  # fallback name -> the ETag of the copy a delete hid, or ANY


def hidden(
    hides: Hides | None, backend: str, etag: str | None, source_etag: str | None = None
) -> bool:
    """Whether the copy that `backend` has, with `etag` (None or "": an answer that names none),
    is one a delete through the proxy hid; `source_etag`, for a copy the proxy made, is the ETag
    of the copy it was made from."""
    if not hides:
        return False
    recorded = hides.get(backend)
    if recorded is not None and (not etag or recorded == ANY or same_etag(etag, recorded)):
        return True
    return source_etag is not None and any(
        e != ANY and same_etag(source_etag, e) for e in hides.values()
    )
