"""`python -m tests.benchmark.chaos [--seconds N] [--seed N]`: the chaos run of issue 21 for
minutes rather than CI's 15 seconds (the same code: tests/support/chaos/), printing its figures:
requests by kind and outcome, faults injected, the repairs the proxy counted, the time to
settle, and what the audit found (0 lost, 0 wrong reads). Exit status 1 when the audit found
anything or the repairs did not settle. Results: tests/benchmark/README.md."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from tests.benchmark import machine
from tests.support.chaos.gateway import deployment
from tests.support.chaos.report import report
from tests.support.chaos.run import Settings, chaos


def parse_args(argv: list[str] | None = None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=300, help="clients' run (default 300)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument("--keys", type=int, default=40, help="the key space (40 keys)")
    parser.add_argument("--seed", type=int, help="the run's seed (default: a new one)")
    parser.add_argument("--workers", type=int, default=2, help="s3-multi's workers (2)")
    parser.add_argument(
        "--settle-timeout", type=float, default=120, help="seconds repairs may take (120)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    args = parser.parse_args(argv)
    settings = Settings(
        args.seconds, args.clients, args.keys, args.seed, args.workers, args.settle_timeout
    )
    return settings, args.keep


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through the context managers: every child is stopped


def main(argv: list[str] | None = None) -> int:
    settings, keep = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    header = machine.machine_lines(with_load_generators=False)
    with tempfile.TemporaryDirectory(prefix="s3multi-chaos-", delete=not keep) as workdir:
        with deployment(Path(workdir), settings.workers) as deployed:
            result = chaos(deployed, settings)
        header.append(f"load average after the run: {machine.load_average()}")
        if keep:
            header.append(f"logs kept in {workdir}")
    print("\n".join([*header, "", *report(result)]))
    settled = result.settled_after is not None and result.equal_after is not None
    return 1 if result.violations or not settled else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
