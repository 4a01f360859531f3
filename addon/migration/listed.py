"""What the drain (`drain`) goes through: each object a fallback lists (`list_objects`), and
why one the primary lacks is not copied, from what the earlier fallbacks and the key's
tombstone say (`skip_reason`, no I/O, the test table's way in)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from addon.config.settings import Backend
from addon.namespace.hiding import Hides, hidden
from addon.namespace.listing_stream import ListingStream
from addon.s3.log_text import printable
from addon.upstream.backend_client import BackendClient

# Skip reasons, as the summary names them.
ALREADY = "already copied"
PRIMARYS = "another version on the primary"  # a client's, or a copy from another fallback
DELETED = "deleted (tombstone)"
CHANGED = "written or deleted meanwhile"


@dataclass(frozen=True)
class Listed:
    backend: Backend  # the fallback that has it
    bucket: str
    key: str
    size: int
    etag: str

    @property
    def where(self) -> str:
        return printable(f"/{self.bucket}/{self.key}")


def skip_reason(
    listed: Listed, hides: Hides | None, earlier: Sequence[tuple[str, str | None]]
) -> str:
    """Why a key the primary lacks is not copied from where it was listed ("": it is copied).
    A read serves instead the copy of an earlier fallback that no tombstone hides (`earlier`:
    the name and ETag of each earlier fallback that has the key, in order); or nothing, when
    the listed copy is one a tombstone hides (`hiding`)."""
    for name, etag in earlier:
        if not hidden(hides, name, etag):
            return f"served from {name}"
    return DELETED if hidden(hides, listed.backend.name, listed.etag) else ""


async def list_objects(
    client: BackendClient, backend: Backend, bucket: str
) -> AsyncIterator[Listed]:
    """Every object of the bucket on `backend`, page after page (none if it lacks the bucket)."""
    stream = ListingStream(client, backend, bucket)
    try:
        done = False
        while not done:
            entries, done = await stream.next()
            for entry in entries:
                yield Listed(backend, bucket, entry.key, entry.size, entry.etag)
    finally:
        stream.close()
