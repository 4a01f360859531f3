"""`s3-multi tombstones`: what the tombstones in the primary's metaBucket still hide, and the
removal (`--prune`) of those that hide nothing any more.

A tombstone hides given copies (fallback name and ETag). Once every one of them is gone from
its fallback (deleted there, or replaced by another object, which shows again anyway), the
tombstone does nothing but cost a lookup: it can go. Run it while the proxy serves: it reads
the fallbacks directly and deletes a tombstone only after reading it again unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from addon.config.settings import Backend, config_or_say
from addon.namespace import tombstones as stones
from addon.namespace.hiding import Hides, hidden
from addon.s3.log_text import printable
from addon.upstream.backend_client import BackendClient, BackendError


@dataclass
class Report:
    seen: int = 0
    hiding: int = 0
    pruned: int = 0


async def review(primary: Backend, fallbacks: tuple[Backend, ...], prune: bool) -> Report:
    client = BackendClient()
    store = stones.Tombstones(primary, fallbacks, client)
    report = Report()
    try:
        after: str | None = None
        while True:
            page, truncated = await store.list_tombstones(stones.PREFIX, after, under=True)
            for tomb_key, etag in page:
                report.seen += 1
                hides = await store.hides_of(tomb_key, etag)
                bucket, _, key = tomb_key.removeprefix(stones.PREFIX).partition("/")
                still = await _still_hidden(client, fallbacks, bucket, key, hides)
                if still:
                    report.hiding += 1
                    state = "hides " + ", ".join(f"{name} {etag}" for name, etag in still)
                elif prune:
                    await store.forget(tomb_key, etag)
                    report.pruned += 1
                    state = "hides nothing: pruned"
                else:
                    state = "hides nothing"
                print(f"{printable(bucket)}/{printable(key)}: {state}")
            if not truncated or not page:
                return report
            after = page[-1][0]
    finally:
        client.close()


async def _still_hidden(
    client: BackendClient,
    fallbacks: tuple[Backend, ...],
    bucket: str,
    key: str,
    hides: dict[str, str],
) -> list[tuple[str, str]]:
    """The (fallback, ETag) copies the tombstone names that are still there."""
    found: dict[str, str | None] = {}
    for backend in fallbacks:
        if backend.name not in hides:
            continue
        async with client.request(backend, "HEAD", bucket, stones.sigv4.key_path(key)) as head:
            await head.read(0)
        if head.status == 200:
            found[backend.name] = head.header("etag")
    return still_there(hides, found)


def still_there(hides: Hides, found: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """The (fallback, ETag) copies the tombstone names that are still there: `found` has the
    ETag of each fallback's copy of the key (None: its answer named none), `hiding` decides."""
    return [(n, e) for n, e in hides.items() if n in found and hidden(hides, n, found[n])]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="s3-multi tombstones", description=__doc__)
    parser.add_argument("--config", required=True, help="the proxy's config file")
    parser.add_argument("--prune", action="store_true", help="remove those that hide nothing")
    args = parser.parse_args(argv)
    config = config_or_say(args.config)
    if config is None:
        return 2
    primary, *fallbacks = config.backends
    if not primary.meta_bucket:
        print(f"s3-multi: {primary.name} has no metaBucket: no tombstones", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(review(primary, tuple(fallbacks), args.prune))
    except (BackendError, stones.TombstoneError) as e:
        print(f"s3-multi: {e}", file=sys.stderr)
        return 1
    done = f"{report.pruned} pruned" if args.prune else f"{report.seen - report.hiding} prunable"
    print(f"{report.seen} tombstones: {report.hiding} still hide a copy, {done}")
    return 0
