"""`s3-multi tombstones`: what the tombstones in the primary's metaBucket still hide, and the
removal (`--prune`) of those that hide nothing any more.

A tombstone hides given copies (fallback name and ETag). Once every one of them is gone from
its fallback (deleted there, or replaced by another object, which shows again anyway), the
tombstone does nothing but cost a lookup: it can go. Until then it stays, even when its key has
been written again through the proxy since: the copy it hides stays hidden whenever the primary
lacks the key. Pruned, the metaBucket holds no more tombstones than the fallbacks hold keys.

Run it while the proxy serves: it reads the fallbacks directly, and removes a tombstone with
`DELETE If-Match` the ETag it reviewed, so that one written since (a new delete of the key)
stays. It first makes sure the primary honours that condition, and refuses to prune otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from addon.config.settings import Backend, config_or_say
from addon.namespace import tombstones as stones
from addon.namespace.hiding import Hides, hidden
from addon.s3 import sigv4
from addon.s3.log_text import printable
from addon.upstream.backend_client import BackendClient, BackendError

STAYS = (
    "a tombstone stays while a copy it hides is on its fallback, even once its key is written "
    "again: that copy stays hidden whenever the primary lacks the key"
)
_WRONG_ETAG = '"00000000000000000000000000000000"'


class Refused(Exception):
    """The primary does not honour If-Match on DELETE: pruning could remove a new tombstone."""


@dataclass
class Report:
    seen: int = 0
    hiding: int = 0
    pruned: int = 0
    kept: int = 0  # prunable when reviewed, but written again (or gone) by the time of removal


async def review(primary: Backend, fallbacks: tuple[Backend, ...], prune: bool) -> Report:
    client = BackendClient()
    store = stones.Tombstones(primary, fallbacks, client)
    report = Report()
    checked = False
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
                elif not prune:
                    state = "hides nothing"
                else:
                    if not checked:
                        await check_conditions(client, primary)
                        checked = True
                    if await store.forget(tomb_key, etag):
                        report.pruned += 1
                        state = "hides nothing: pruned"
                    else:
                        report.kept += 1
                        state = "hides nothing: written again or gone since it was read, kept"
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
    """The (fallback, ETag) copies the tombstone names that are still there. A fallback that
    cannot say (neither 200 nor 404) stops the review: its copy may be there."""
    found: dict[str, str | None] = {}
    for backend in fallbacks:
        if backend.name not in hides:
            continue
        async with client.request(backend, "HEAD", bucket, sigv4.key_path(key)) as head:
            await head.read(0)
        if head.status == 200:
            found[backend.name] = head.header("etag")
        elif head.status != 404:
            where = f"{printable(bucket)}/{printable(key)}"
            raise stones.TombstoneError(f"{backend.name} answered {head.status} to HEAD {where}")
    return still_there(hides, found)


def still_there(hides: Hides, found: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """The (fallback, ETag) copies the tombstone names that are still there: `found` has the
    ETag of each fallback's copy of the key (None: its answer named none), `hiding` decides."""
    return [(n, e) for n, e in hides.items() if n in found and hidden(hides, n, found[n])]


async def check_conditions(client: BackendClient, primary: Backend) -> None:
    """Raise Refused unless the primary keeps an object that a `DELETE If-Match` names with
    another ETag: tried on an object of the command's own in the metaBucket (then removed)."""
    probe = sigv4.key_path(f"probe/{socket.gethostname()}-{os.getpid()}-{time.time_ns()}")
    bucket = primary.meta_bucket
    async with client.request(primary, "PUT", bucket, probe, body=b"probe") as put:
        await put.read(64 * 1024)
    if put.status != 200:
        raise stones.TombstoneError(f"{primary.name} answered {put.status} to a PUT")
    wrong = [("if-match", _WRONG_ETAG)]
    async with client.request(primary, "DELETE", bucket, probe, headers=wrong) as tried:
        await tried.read(64 * 1024)
    async with client.request(primary, "DELETE", bucket, probe) as removed:
        await removed.read(64 * 1024)
    if tried.status in (200, 204):
        raise Refused(
            f"{primary.name} ignores If-Match on DELETE: pruning could remove a tombstone "
            "written meanwhile, so nothing is pruned"
        )


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
    except Refused as e:
        print(f"s3-multi: {e}", file=sys.stderr)
        return 2
    except (BackendError, stones.TombstoneError) as e:
        print(f"s3-multi: {e}", file=sys.stderr)
        return 1
    done = f"{report.pruned} pruned" if args.prune else f"{report.seen - report.hiding} prunable"
    kept = f", {report.kept} written again since and kept" if report.kept else ""
    print(f"{report.seen} tombstones: {report.hiding} still hide a copy, {done}{kept}")
    if report.hiding:
        print(f"({STAYS})")
    return 0
