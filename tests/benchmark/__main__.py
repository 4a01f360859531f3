"""`python -m tests.benchmark [--quick]`: see settings.py for the options, README for results."""

from __future__ import annotations

import contextlib
import signal
import sys

from tests.benchmark import machine
from tests.benchmark.backends import find_nginx, weed_path
from tests.benchmark.legs import SETUPS
from tests.benchmark.load import find_wrk
from tests.benchmark.report import report
from tests.benchmark.runner import all_legs, benchmark, progress, start_all
from tests.benchmark.settings import parse_args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through the ExitStack: every child is stopped


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    find_nginx()
    weed_path()
    wrk = find_wrk()
    header = machine.machine_lines()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as stack:
        bench = start_all(settings, wrk, stack)
        trips = benchmark(bench)
        progress("stopping everything")
    header.append(f"load average after the run: {machine.load_average()}")
    legs = all_legs(settings)
    print(report(settings, header, SETUPS, bench.samples, legs, trips, bench.problems))
    return 1 if bench.problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
