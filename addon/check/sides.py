"""The sides of a check and what it asks them: which backends are compared in which role (from
the config and `--from`), a client that counts every request by backend and kind, and the
HEAD of one copy, for what a listing does not say (a replica's marker, a copy's source ETag).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from addon.check.differences import FALLBACK, PRIMARY, REPLICA, Head, Layout, Side
from addon.config.settings import Backend, Config
from addon.namespace.listing_stream import Listed
from addon.namespace.object_meta import REPLICA_MARK, SOURCE_ETAG
from addon.namespace.tombstones import PREFIX as TOMBSTONES
from addon.s3 import sigv4
from addon.upstream.backend_client import BackendClient, BackendError

LIST, HEAD, GET, WRITE = "listings", "HEADs", "GETs", "writes"


class Unreachable(Exception):
    """A backend that a check needs cannot be asked: the comparison cannot be made."""


@dataclass(frozen=True)
class Sides:
    """The primary and the backends compared with it, in config order; the tombstones' listing
    (in the primary's metaBucket) is one more side when it has one."""

    backends: tuple[Backend, ...]
    layout: Layout

    @classmethod
    def of(cls, config: Config, only: Sequence[str] = ()) -> Sides:
        """The primary and every other backend, or those named in `only` (ValueError if one
        is not a backend of the config, or is the primary)."""
        primary, *others = config.backends
        unknown = [n for n in only if n not in {b.name for b in others}]
        if unknown:
            known = ", ".join(b.name for b in others) or "none"
            raise ValueError(
                f"no backend named {unknown[0]!r} besides the primary (others: {known})"
            )
        compared = [b for b in others if not only or b.name in only]
        roles = [REPLICA if b.replicate != "off" else FALLBACK for b in compared]
        sides = (Side(primary.name, PRIMARY), *map(Side, [b.name for b in compared], roles))
        left_out = frozenset(b.name for b in others if b not in compared)
        layout = Layout(sides, bool(primary.meta_bucket), left_out)
        return cls((primary, *compared), layout)

    @property
    def primary(self) -> Backend:
        return self.backends[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Of every side, for messages: the tombstones' is said as such."""
        names = tuple(b.name for b in self.backends)
        return names + ((f"{self.primary.name}'s tombstones",) if self.layout.tombstones else ())

    def role(self, index: int) -> str:
        return self.layout.sides[index].role

    def own_buckets(self) -> frozenset[str]:
        """The metaBuckets: the proxy's own state, never compared."""
        return frozenset(b.meta_bucket for b in self.backends if b.meta_bucket)


def tombstone_prefix(bucket: str) -> str:
    return f"{TOMBSTONES}{bucket}/"


class CountingClient(BackendClient):
    """A BackendClient that counts its requests by (backend name, kind)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[tuple[str, str]] = Counter()

    def request(self, backend, method, bucket, key_path="", query="", *args, **kwargs):  # type: ignore[no-untyped-def, override]
        kind = WRITE if method not in ("GET", "HEAD") else HEAD if method == "HEAD" else GET
        if method == "GET" and (bucket is None or "list-type=" in query):
            kind = LIST
        self.counts[(backend.name, kind)] += 1
        return super().request(backend, method, bucket, key_path, query, *args, **kwargs)


async def head(client: BackendClient, backend: Backend, bucket: str, key: str) -> Head | None:
    """The copy's HEAD (None: 404); Unreachable when the backend cannot say."""
    try:
        async with client.request(backend, "HEAD", bucket, sigv4.key_path(key)) as reply:
            await reply.read(0)
    except BackendError as e:
        raise Unreachable(f"{backend.name} ({backend.endpoint}): {e}") from None
    if reply.status == 404:
        return None
    if reply.status != 200:
        raise Unreachable(f"{backend.name} answered {reply.status} to a HEAD of {bucket}/{key}")
    length = reply.header("content-length") or "0"
    return Head(
        reply.header("etag") or "",
        int(length) if length.isdigit() else 0,
        reply.header(SOURCE_ETAG),
        reply.header(REPLICA_MARK) is not None,
    )


def listed(key: str, found: Head | None) -> Listed | None:
    """A HEAD's answer, as the listing would have given it."""
    return None if found is None else Listed(key, found.etag, found.size)
