"""The machine and the versions a run was made with, for the report's first lines."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
from pathlib import Path

import mitmproxy.version

from tests.benchmark.backends import find_nginx, weed_path
from tests.benchmark.load import find_wrk
from tests.benchmark.suite import VENV_BIN


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _first_line(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stdout + done.stderr).strip().splitlines()[0]


def versions(with_load_generators: bool = True) -> str:
    """The versions of what runs; `with_load_generators`: nginx and wrk too (the legs through
    the proxies; the check leg alone uses neither)."""
    weed = _first_line([weed_path(), "version"])  # "version 8000GB 4.48 pypi linux amd64"
    weed = next((word for word in weed.split() if word[:1].isdigit() and "." in word), weed)
    rclone = _first_line([str(VENV_BIN / "rclone"), "version"])
    found = f"Python {platform.python_version()}; mitmproxy {mitmproxy.version.VERSION}; "
    if not with_load_generators:
        return found + f"SeaweedFS {weed}; {rclone}"
    nginx = _first_line([find_nginx(), "-v"]).removeprefix("nginx version: ")
    wrk = _first_line([find_wrk(), "-v"]).split(" [")[0]  # "wrk debian/4.1.0-3+b2 [epoll] ..."
    return found + f"{nginx}; SeaweedFS {weed}; {rclone}; {wrk}"


def machine_lines(with_load_generators: bool = True) -> list[str]:
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {len(os.sched_getaffinity(0))} cores ({cpu_model()}), "
        f"{memory_gib():.0f} GiB; load average before the run: {load_average()}",
        versions(with_load_generators),
    ]
