"""The processes that parse listing pages for a check: reading the XML is most of what a
comparison costs (a million keys: half of its CPU), and in other processes it runs on another
core while this one joins and classifies.

They are forked before the check's event loop starts (a process with other threads must not
fork), each at once (`ProcessPoolExecutor` would start them later), and they end with this
process whatever ends it: they ignore SIGINT (Ctrl-C reaches the whole process group; this
process stops them) and get SIGTERM when it dies (PR_SET_PDEATHSIG, Linux). A fork shares this
process's memory until either writes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1
MOST = 4


def parsers(sides: int) -> ProcessPoolExecutor:
    """One process per listed side (at most MOST, and the cores), started now."""
    count = max(1, min(sides, os.cpu_count() or 1, MOST))
    pool = ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_started,
    )
    pool.submit(int).result()  # a fork context starts every process at the first task
    return pool


def _started() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
