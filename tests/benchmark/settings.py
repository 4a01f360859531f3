"""The command line: how long and how often the legs run."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

USAGE = """Benchmark: s3-multi beside plain mitmdump, the rclone union peer and the backends.

Starts everything it needs on 127.0.0.1 and stops it at the end (also on Ctrl-C): nginx as two
fake S3 backends, two SeaweedFS servers as real ones, and in front of each pair plain mitmdump
(before the primary), s3-multi and, for SeaweedFS, `rclone serve s3` over an rclone union and
s3-multi copying on read (the large fallback GETs alone).
Small requests come from wrk (8 keep-alive connections replaying a request signed once), large
objects from a streaming client on one connection. Each run measures every way in turn, so a
ratio compares numbers taken moments apart; tables show medians over runs.
"""


@dataclass(frozen=True)
class Settings:
    runs: int  # of the small legs
    seconds: int  # wrk's duration for one small leg (wrk takes whole seconds)
    large_runs: int
    large_seconds: float  # a large leg repeats its transfer until this much time has passed
    sizes_mib: tuple[int, ...]
    connections: int = 8
    check_keys: int = 20_000  # the check leg's keys on both SeaweedFS (0: no check leg)
    check_million: int = 1_000_000  # the keys the fake listing server lists
    only_check: bool = False
    only_replication: bool = False


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmark",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one short run, 64 MiB objects")
    parser.add_argument(
        "--size-mib",
        type=int,
        nargs="+",
        metavar="N",
        help="large object sizes in MiB (default: 256 1024; --quick: 64)",
    )
    parser.add_argument("--runs", type=int, help="runs of the small legs (default 3, --quick 1)")
    parser.add_argument("--large-runs", type=int, default=1, help="runs of the large legs (1)")
    parser.add_argument(
        "--check-keys",
        type=int,
        default=20_000,
        help="keys of the check leg on each SeaweedFS (default 20000; 0: no check leg)",
    )
    parser.add_argument(
        "--check-fake-keys",
        type=int,
        default=1_000_000,
        help="keys the fake listing server lists for the check's RSS (default 1000000)",
    )
    parser.add_argument(
        "--only-check", action="store_true", help="the check leg alone (SeaweedFS, fake listing)"
    )
    parser.add_argument(
        "--only-replication",
        action="store_true",
        help="the replication legs alone: PUTs with a sync or an async replica (SeaweedFS); "
        "the first --size-mib (default 256) is the large PUT's",
    )
    args = parser.parse_args(argv)
    sizes = args.size_mib or (
        [64] if args.quick else [256] if args.only_replication else [256, 1024]
    )
    if any(size < 1 for size in sizes):
        parser.error("--size-mib takes sizes of at least 1")
    for name in ("runs", "large_runs"):
        if (getattr(args, name) or 1) < 1:
            parser.error(f"--{name.replace('_', '-')} takes at least 1")
    runs = args.runs or (1 if args.quick else 3)
    ordered = tuple(dict.fromkeys(sizes))  # in order, once each
    if args.check_keys < 0:
        parser.error("--check-keys takes 0 or more")
    seconds, large_seconds = (1, 0.0) if args.quick else (3, 2.0)
    return Settings(
        runs,
        seconds,
        args.large_runs,
        large_seconds,
        ordered,
        check_keys=args.check_keys,
        check_million=args.check_fake_keys,
        only_check=args.only_check,
        only_replication=args.only_replication,
    )
