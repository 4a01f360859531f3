"""`python -m tests.benchmark [--quick]`: see settings.py for the options, README for results."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.benchmark import check_leg, machine
from tests.benchmark.backends import WeedPair, find_nginx, start_seaweedfs, weed_path
from tests.benchmark.legs import SETUPS
from tests.benchmark.load import find_wrk
from tests.benchmark.replication_leg import replication_legs
from tests.benchmark.report import report
from tests.benchmark.runner import all_legs, benchmark, progress, start_all
from tests.benchmark.settings import Settings, parse_args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through the ExitStack: every child is stopped


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    if settings.only_check:
        return only_check(settings)
    if settings.only_replication:
        return only_replication(settings)
    find_nginx()
    weed_path()
    wrk = find_wrk()
    header = machine.machine_lines()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as stack:
        bench = start_all(settings, wrk, stack)
        trips = benchmark(bench)
        checked = []
        if settings.check_keys:
            pair = next(d.pair for d in bench.deployments if isinstance(d.pair, WeedPair))
            checked = check(pair, bench.workdir, settings)
        progress("stopping everything")
    header.append(f"load average after the run: {machine.load_average()}")
    legs = all_legs(settings)
    print(report(settings, header, SETUPS, bench.samples, legs, trips, bench.problems))
    print("\n".join(["", *checked]))
    return 1 if bench.problems else 0


def check(pair: WeedPair, workdir: Path, settings: Settings) -> list[str]:
    """The check leg on `pair` and on the fake listing server: the report's check section."""
    progress(f"check leg: {settings.check_keys:,} keys on both SeaweedFS, {settings.runs} runs")
    weed = check_leg.seaweedfs_leg(pair, workdir, settings.check_keys, settings.runs)
    progress(f"check leg: {settings.check_million:,} keys from the fake listing server")
    million = check_leg.million_leg(workdir, settings.check_million)
    return check_leg.report(weed, settings.check_keys, million, settings.check_million)


def only_check(settings: Settings) -> int:
    """The check leg alone, on a SeaweedFS pair of its own."""
    header = machine.machine_lines(with_load_generators=False)
    lines = _on_a_pair_of_its_own("check", header, lambda pair, dir: check(pair, dir, settings))
    print("\n".join([*header, "", *lines]))
    return 0


def only_replication(settings: Settings) -> int:
    """The replication legs alone, on a SeaweedFS pair of their own."""
    wrk = find_wrk()
    header = machine.machine_lines()
    lines = _on_a_pair_of_its_own(
        "repl", header, lambda pair, dir: replication_legs(pair, dir, settings, wrk)
    )
    print("\n".join([*header, "", *lines]))
    return 1 if any(line.startswith("- problem") for line in lines) else 0


def _on_a_pair_of_its_own(
    name: str, header: list[str], legs: Callable[[WeedPair, Path], list[str]]
) -> list[str]:
    """`legs`' lines, run on two SeaweedFS started for them (and stopped, whatever happens) in
    a directory of their own; the load average after them goes to `header`."""
    weed_path()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as stack:
        prefix = f"s3multi-{name}-"
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        progress("starting two SeaweedFS")
        pair = start_seaweedfs(workdir)
        stack.callback(pair.stop)
        lines = legs(pair, workdir)
    header.append(f"load average after the run: {machine.load_average()}")
    return lines


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
