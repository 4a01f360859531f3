"""`s3-multi --workers N`: N proxy processes serving one port, kept running.

This process (the supervisor) serves no request. It starts N workers, each the s3-multi command
in one process (`--worker I`: it binds the port with SO_REUSEPORT, see `shared_port`), and the
kernel spreads connections between them. Each worker verifies, routes and falls back on its
own: nothing is shared in memory (tombstones live on the primary, metrics in files, see
`metrics`).

- SIGTERM: passed on to every worker, each drains (see `in_flight`); SIGINT stops them at once;
  SIGHUP: each reloads its config (a bad one is refused by each, which keeps its own).
- A worker that refuses to start (status 2: its config is bad) the first time stops them all,
  with that status: the others would refuse it too.
- A worker that exits while nobody asked it to is logged and started again, after 0.5 s, then
  twice as long after each quick death (at most 30 s), so a worker that cannot start (its
  config file broken since) does not spin; one that ran for 30 s starts from 0.5 s again.
- Before any worker starts: the port is checked to be free (SO_REUSEPORT would otherwise let
  the workers share it with another proxy left running; the TIME_WAIT connections of one just
  stopped do not count, so a restart serves at once), mitmproxy's CA is made if it is
  missing (else each worker would make its own, and clients would trust only one of them), and
  a metrics directory is made for this run (removed at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable

from mitmproxy import certs
from mitmproxy.options import CONF_BASENAME, CONF_DIR, KEY_SIZE
from prometheus_client import multiprocess

from addon.ops.metrics import MULTIPROCESS_DIR

WORKER_VARIABLE = "S3MULTI_WORKER"  # set in a worker's environment: its number, from 1
FIRST_DELAY, MOST_DELAY = 0.5, 30.0  # seconds before a dead worker is started again
BAD_CONFIG = 2  # a worker's exit status when it cannot be configured
STABLE = 30.0  # a worker that ran this long starts again after FIRST_DELAY

log = logging.getLogger("s3multi.workers")


def cores() -> int:
    """The cores this process may run on (its affinity, which containers may narrow)."""
    return len(os.sched_getaffinity(0))


def port_is_free(host: str, port: int) -> str | None:
    """None if nothing listens on host:port; else why not, on one line.

    The probe binds as the listeners do (SO_REUSEADDR, as asyncio sets it): the connections of
    a proxy just stopped, which it closed first, sit in TIME_WAIT on the port for a minute and
    must not stop a restart; a socket listening there still does (Linux refuses that bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            return f"cannot listen on {host or '*'}:{port}: {e.strerror or e}"
    return None


def make_ca() -> None:
    """mitmproxy's CA in its default confdir, made now if missing (as mitmproxy would)."""
    certs.CertStore.from_store(os.path.expanduser(CONF_DIR), CONF_BASENAME, KEY_SIZE)


def describe(status: int) -> str:
    if status < 0:
        return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


class Supervisor:
    def __init__(
        self, count: int, command: Callable[[int], list[str]], env: dict[str, str], grace: float
    ) -> None:
        self.count = count
        self.command = command  # a worker's command line, given its number
        self.env = env
        self.grace = grace  # seconds the workers get to stop, after the stop signal
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.stop_signal = signal.SIGTERM
        self.status = 0  # the exit status: 2 when a worker refused its config at start

    async def run(self) -> int:
        metrics_dir = tempfile.mkdtemp(prefix="s3-multi-metrics-")
        self.env = {**self.env, MULTIPROCESS_DIR: metrics_dir}
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._pass_on, signal.SIGHUP)
        log.info("s3-multi: %d workers", self.count)
        try:
            keepers = [
                asyncio.create_task(self._keep(n, metrics_dir)) for n in range(1, self.count + 1)
            ]
            await self.stopping.wait()
            _, late = await asyncio.wait(keepers, timeout=self.grace)
            for number, process in self.processes.items():
                if process.returncode is None:
                    log.warning("s3-multi: worker %d did not stop in time: killed", number)
                    process.kill()
            await asyncio.gather(*late)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("s3-multi: all workers stopped")
        return self.status

    async def _keep(self, number: int, metrics_dir: str) -> None:
        """Run worker `number` until the supervisor stops, starting it again when it dies."""
        delay, first = 0.0, True
        while not self.stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *self.command(number), env={**self.env, WORKER_VARIABLE: str(number)}
            )
            self.processes[number] = process
            if self.stopping.is_set():  # the signal came while it was starting
                process.send_signal(self.stop_signal)
            status = await process.wait()
            # Its requests in flight leave the metrics' sum; its counts stay in it.
            multiprocess.mark_process_dead(process.pid, metrics_dir)
            if self.stopping.is_set():
                return
            if status == BAD_CONFIG and first:
                log.error("s3-multi: worker %d refused its config (above): stopping", number)
                self.status = BAD_CONFIG
                self._stop(signal.SIGTERM)
                return
            first = False
            lived = time.monotonic() - started
            delay = FIRST_DELAY if lived >= STABLE or not delay else min(delay * 2, MOST_DELAY)
            log.warning(
                "s3-multi: worker %d (pid %d) %s after %.1fs; starting it again in %gs",
                number,
                process.pid,
                describe(status),
                lived,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    def _stop(self, sig: signal.Signals) -> None:
        if not self.stopping.is_set():
            log.info("s3-multi: %s: stopping %d workers", sig.name, len(self.processes))
        self.stop_signal = sig
        self.stopping.set()
        self._pass_on(sig)

    def _pass_on(self, sig: signal.Signals) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)


def supervise(count: int, command: Callable[[int], list[str]], env: dict[str, str], grace: float):
    """Run `count` workers until SIGTERM or SIGINT; the exit status."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s.%(msecs)03d] %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    make_ca()
    return asyncio.run(Supervisor(count, command, env, grace).run())
