"""A tombstone as it is stored (see `tombstones`): the object `tombstones/<bucket>/<key>` in the
primary's metaBucket, whose body is JSON:

    {"hides": {"warm": "\"9b2cf535f27731c974343645a3985328\""},
     "at": "2026-12-07T18:20:01.123Z", "nonce": "5f0c2b9a0e8d4c1f"}

`hides` names each fallback that had the key when it was deleted through the proxy, with the
ETag of the copy it had (as its HEAD gave it); `at` is when the tombstone was written (UTC);
`nonce` makes two tombstones with the same `hides` two bodies, so two ETags: a removal is
`DELETE If-Match` the ETag that was reviewed, and must never remove one written since. Readers
read `hides` only: a body from before `at` and `nonce`, or with fields added later, reads the
same.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

PREFIX = "tombstones/"


def key_of(bucket: str, key: str) -> str:
    return f"{PREFIX}{bucket}/{key}"


def record(hides: dict[str, str]) -> bytes:
    """A new tombstone's body: what it hides, now, and a nonce of its own."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"hides": hides, "at": now, "nonce": secrets.token_hex(8)}
    return json.dumps(body, sort_keys=True).encode()


def hides_in(body: bytes) -> dict[str, str]:
    """What a tombstone's body hides; ValueError when it is not a tombstone's."""
    try:
        hides = json.loads(body)["hides"]
        return {str(name): str(etag) for name, etag in hides.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError("not a tombstone") from None
