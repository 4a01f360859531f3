"""`s3-multi check`: do the backends agree as the config says they should? Compares, bucket by
bucket, the primary with each other backend by streaming their sorted listings side by side
(`run`), reports each difference with its meaning (`differences`), and with `--repair` makes
them agree (`repairs`). Safe while the proxy serves, and resumable: a second run finds only
what is left.

    s3-multi check --config FILE [--bucket B ...] [--prefix P] [--from NAME ...] [--json]
                   [--repair] [--migrate] [--dry-run] [--jobs N]

Exit status: 0 when the backends agree as the config says they should (keys a fallback alone
has are not migrated yet: reported, normal), 1 when something is left that --repair is for (or
a repair failed), 2 when the comparison cannot be made (a bad config, a backend that cannot be
reached or that lists in another order than the others), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from concurrent.futures import Executor

from addon.check.output import Human, JsonLines, json_summary, progress, summary
from addon.check.parsing import parsers
from addon.check.repairs import Repairs, ReplicaRepair, replication_repair
from addon.check.run import CannotCompare, Report, Run
from addon.check.sides import CountingClient, Sides
from addon.config.settings import Config, config_or_say
from addon.migration.progress import Progress
from addon.namespace.tombstones import Tombstones

INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3-multi check",
        description="Compare the primary with the other backends, bucket by bucket, and say "
        "what differs and what it means; --repair makes them agree as the config says.",
    )
    parser.add_argument("--config", required=True, help="the proxy's config file")
    parser.add_argument(
        "--bucket", action="append", default=[], help="only this bucket (repeat for more)"
    )
    parser.add_argument("--prefix", default="", help="only the keys under this prefix")
    parser.add_argument(
        "--from",
        dest="only",
        action="append",
        default=[],
        metavar="NAME",
        help="compare the primary with this backend only (repeat for more; default: every one)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout")
    parser.add_argument("--repair", action="store_true", help="make the backends agree")
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="with --repair: copy keys the primary lacks to it too, as s3-multi migrate does",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --repair: say what it would do, write nothing"
    )
    parser.add_argument("--jobs", type=int, default=8, help="HEADs and repairs at once (default 8)")
    return parser


def main(argv: list[str], replica: ReplicaRepair | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs takes at least 1")
    if (args.migrate or args.dry_run) and not args.repair:
        parser.error("--migrate and --dry-run go with --repair")
    config = config_or_say(args.config)
    if config is None:
        return 2
    try:
        sides = Sides.of(config, args.only)
    except ValueError as e:
        print(f"s3-multi: {e}", file=sys.stderr)
        return 2
    shown = progress(sys.stderr, sys.stderr.isatty())
    if not args.json:
        print(_opening(sides, args), flush=True)
    report = Report()
    client = CountingClient()
    replica = replica or replication_repair(client, config.backends[0])
    pages = parsers(len(sides.backends))
    try:
        running = _check(config, sides, client, report, shown, replica, pages, args)
        status, error = asyncio.run(running)
    finally:
        pages.shutdown(cancel_futures=True)
    now = time.monotonic()
    if status == 0:
        status = 1 if report.left or report.failed else 0
    if args.json:
        print(json_summary(report, client.counts, now, status, error), flush=True)
    else:
        for text in summary(report, client.counts, now, status == INTERRUPTED):
            print(text)
    if error:
        print(f"s3-multi: {error}", file=sys.stderr)
    return status


def _opening(sides: Sides, args: argparse.Namespace) -> str:
    others = ", ".join(f"{s.name} ({s.role})" for s in sides.layout.sides[1:]) or "nothing"
    text = f"checking {sides.primary.name} (primary) against {others}"
    if sides.layout.tombstones:
        text += f", with the tombstones in {sides.primary.meta_bucket}"
    text += f"; buckets {', '.join(args.bucket)}" if args.bucket else "; every bucket"
    text += f" under {args.prefix!r}" if args.prefix else ""
    if args.repair:
        text += " (repairing, dry run)" if args.dry_run else " (repairing)"
    return text


async def _check(
    config: Config,
    sides: Sides,
    client: CountingClient,
    report: Report,
    shown: Progress,
    replica: ReplicaRepair | None,
    pages: Executor,
    args: argparse.Namespace,
) -> tuple[int, str]:
    """Runs the check to its end: (0, ""), or the status and message it stopped with."""
    output = (
        JsonLines(sys.stdout, shown, sides.primary.name) if args.json else Human(sys.stdout, shown)
    )
    tombstones = None
    if sides.primary.meta_bucket:
        tombstones = Tombstones(sides.primary, tuple(config.backends[1:]), client)
    repairs = Repairs(
        client,
        sides,
        tuple(config.backends[1:]),
        tombstones,
        replica,
        shown.say,
        migrate=args.migrate,
        dry_run=args.dry_run,
    )
    run = Run(
        client,
        sides,
        tombstones,
        repairs,
        output,
        report,
        args.prefix,
        args.repair,
        args.jobs,
        pages,
    )
    running = asyncio.ensure_future(run.run(args.bucket))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, running.cancel)
    try:
        while not running.done():
            shown.tick(report)
            await asyncio.wait([running], timeout=0.1)
        running.result()
        if report.nowhere:
            return 2, f"no backend has the bucket {', '.join(report.nowhere)}"
        return 0, ""
    except asyncio.CancelledError:
        return INTERRUPTED, ""
    except CannotCompare as e:
        return 2, str(e)
    finally:
        shown.close(report)
        client.close()
