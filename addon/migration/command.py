"""`s3-multi migrate`: drain fallbacks into the primary (see `drain`), with a progress
line and a summary at the end. Safe to run while the proxy serves, and to run again: an
interrupted drain (Ctrl-C, SIGTERM, a crash) resumes where it stopped. With replicas, each copy
is written to their outbox (`hear`, given by the command line): the proxies repair them.

    s3-multi migrate --config FILE [--bucket B ...] [--from NAME] [--dry-run] [--delete-source]
                     [--jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable
from typing import Protocol

from addon.config.settings import Backend, Config, config_or_say
from addon.migration.drain import Drain, Report
from addon.migration.progress import Progress, summary
from addon.namespace.own_writes import nobody
from addon.namespace.tombstones import TombstoneError, Tombstones
from addon.s3.errors import S3Error
from addon.upstream.backend_client import BackendClient, BackendError

INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3-multi migrate",
        description="Copy every object that a fallback has and the primary lacks (and that no "
        "tombstone hides) to the primary, as copy-on-read does. Run it again to resume.",
    )
    parser.add_argument("--config", required=True, help="the proxy's config file")
    parser.add_argument(
        "--bucket", action="append", help="only this bucket (repeat for more; default: all)"
    )
    parser.add_argument(
        "--from", dest="source", metavar="NAME", help="only this fallback (default: every one)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be copied, write nothing"
    )
    parser.add_argument(
        "--delete-source",
        action="store_true",
        help="delete each object from its fallback once its copy on the primary is verified",
    )
    parser.add_argument("--jobs", type=int, default=8, help="objects copied at once (default 8)")
    return parser


class Hearing(Protocol):
    """Who hears of the copies the drain makes (replication's outbox, for the replicas)."""

    def __call__(self, what: str, bucket: str, key: str) -> None: ...
    async def close(self) -> None: ...


# Given the config and the drain's client, who hears of its copies (None: nobody).
Hear = Callable[[Config, BackendClient], Hearing | None]


def main(argv: list[str], hear: Hear | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs takes at least 1")
    config = config_or_say(args.config)
    if config is None:
        return 2
    primary, *fallbacks = config.backends
    sources = [b for b in fallbacks if args.source in (None, b.name)]
    if not sources:
        known = ", ".join(b.name for b in fallbacks) or "none"
        wanted = f"no fallback named {args.source!r}" if args.source else "no fallbacks"
        print(f"s3-multi: {wanted} (fallbacks: {known})", file=sys.stderr)
        return 2
    report = Report()
    progress = Progress(sys.stderr, sys.stderr.isatty())
    print(
        f"migrating {', '.join(b.name for b in sources)} -> {primary.name}"
        + (f", buckets {', '.join(args.bucket)}" if args.bucket else ", every bucket")
        + (" (dry run)" if args.dry_run else ""),
        flush=True,
    )
    status = asyncio.run(_drain(config, tuple(sources), args, report, progress, hear))
    for line in summary(report, time.monotonic(), args.dry_run, status == INTERRUPTED):
        print(line)
    return status or (1 if report.failed else 0)


async def _drain(
    config: Config,
    sources: tuple[Backend, ...],
    args: argparse.Namespace,
    report: Report,
    progress: Progress,
    hear: Hear | None,
) -> int:
    """Runs the drain to its end; 0, or what it was stopped by (a signal, an error)."""
    primary, *fallbacks = config.backends
    client = BackendClient()
    tombstones = Tombstones(primary, tuple(fallbacks), client) if primary.meta_bucket else None
    hearing = hear(config, client) if hear is not None and not args.dry_run else None
    drain = Drain(
        client,
        primary,
        tuple(fallbacks),
        sources,
        report,
        progress.say,
        tombstones,
        dry_run=args.dry_run,
        delete_source=args.delete_source,
        jobs=args.jobs,
        landed=hearing or nobody,
    )
    running = asyncio.ensure_future(drain.run(args.bucket))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, running.cancel)
    try:
        while not running.done():
            progress.tick(report)
            await asyncio.wait([running], timeout=0.1)
        running.result()
        return 0
    except asyncio.CancelledError:
        return INTERRUPTED
    except (BackendError, TombstoneError, S3Error, ValueError) as e:
        progress.say(f"s3-multi: stopped: {e}")
        return 1
    finally:
        progress.close(report)
        if hearing is not None:
            await hearing.close()
        client.close()
