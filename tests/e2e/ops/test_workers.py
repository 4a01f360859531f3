"""`s3-multi --workers 2`: two proxy processes on one port, balanced by the kernel, kept running
by the command, stopped together."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addon.local.servers import free_port
from addon.ops import workers
from tests.support.direct import put_direct
from tests.support.processes import VENV_BIN
from tests.support.proxy import Proxy, proxy_env, start_proxy, write_config
from tests.support.raw_http import Connection, Request
from tests.support.status import sample, status

pytestmark = pytest.mark.e2e


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def wait_for(condition, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def serving_worker(proxy: Proxy) -> str:
    """Which worker answers a new connection (its liveness answer names it)."""
    answer = status(proxy.port, "/-/healthy")
    assert answer.status == 200
    return json.loads(answer.body)["worker"]


def workers_seen(proxy: Proxy, connections: int = 30) -> set[str]:
    return {serving_worker(proxy) for _ in range(connections)}


def start_workers(backends, tmp_path: Path, port: int | None = None) -> Proxy:
    config = write_config(tmp_path / "c.json", backends)
    port = port or free_port()
    command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--workers", "2"]
    command += ["--port", f"127.0.0.1:{port}", "--debug"]
    # HOME: mitmproxy's confdir (~/.mitmproxy), where the command makes the CA both workers use.
    env = {**proxy_env(), "HOME": str(tmp_path)}
    proxy = start_proxy(command, tmp_path, env, port, confdir=tmp_path / ".mitmproxy")
    wait_for(lambda: proxy.log().count("listening at") == 2, "both workers to listen")
    return proxy


def test_two_workers_share_the_port_restart_and_stop_together(backends, tmp_path, bucket):
    proxy = start_workers(backends[:2], tmp_path)
    try:
        supervisor = proxy.process.pid
        first = wait_for(lambda: len(children(supervisor)) == 2 and children(supervisor), "2")
        assert workers_seen(proxy) == {"1", "2"}

        # Each S3 request on a new connection: both workers serve, fall back, sign alike, and
        # both serve HTTPS with the one CA the command made before starting them.
        put_direct(backends[1], bucket, "k", b"on the secondary")
        for i in range(12):
            client = proxy.client(https=i % 2 == 1)
            assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"on the secondary"
        log = proxy.log()
        for worker in ("1", "2"):
            assert f"worker {worker}: GetObject /{bucket}/k via [primary 404" in log

        # Their metrics are one sum, whichever worker is scraped.
        text = status(proxy.port, "/-/metrics").body.decode()
        assert sample(text, "s3multi_fallback_hits_total", backend="secondary") == 12
        assert sample(text, "s3multi_requests_total", operation="GetObject", status="200") == 12
        assert sample(text, "s3multi_processes") == 2

        # A worker that dies is started again, and logged.
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        again = wait_for(
            lambda: len(children(supervisor) - first) == 1 and children(supervisor), "a new worker"
        )
        assert killed not in again
        assert re.search(rf"worker \d \(pid {killed}\) was killed by SIGKILL after", proxy.log())
        wait_for(lambda: proxy.log().count("listening at") == 3, "the new worker to listen")
        assert workers_seen(proxy) == {"1", "2"}
        text = status(proxy.port, "/-/metrics").body.decode()
        assert sample(text, "s3multi_processes") == 2  # the dead one is out of the sum
        assert sample(text, "s3multi_fallback_hits_total", backend="secondary") == 12  # kept

        # SIGTERM stops them all, and nothing is left.
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=30) == 0
        for pid in again:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the command"
        assert "all workers stopped" in proxy.log()
    finally:
        proxy.stop()


def time_wait_sockets(port: int) -> int:
    """Sockets of 127.0.0.1:`port` (the server's side) in TIME_WAIT, from /proc/net/tcp."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        count += state == "06" and local == f"0100007F:{port:04X}"
    return count


def test_workers_start_again_at_once_on_the_port_they_just_served(backends, tmp_path, bucket):
    """SIGTERM, then start again at once (as systemd restarts a service): the connections the
    workers closed first sit in TIME_WAIT on the port, and the new command serves anyway."""
    put_direct(backends[0], bucket, "k", b"served")
    proxy = start_workers(backends[:1], tmp_path)
    port = proxy.port
    try:
        for _ in range(40):  # keep-alive connections; the last request on each asks the close
            with Connection(port) as connection:
                for close in (False, False, True):
                    request = Request("GET", "/-/healthy", headers=(("Host", f"127.0.0.1:{port}"),))
                    answer = connection.exchange(
                        request.add("Connection", "close") if close else request
                    )
                    assert answer.status == 200
                assert connection.read_until_closed() == b""  # the server closed first
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=30) == 0
    finally:
        proxy.stop()
    assert time_wait_sockets(port) > 0

    started = time.monotonic()
    (tmp_path / "again").mkdir()
    again = start_workers(backends[:1], tmp_path / "again", port)
    try:
        client = again.client()
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"served"
        # As long as starting takes (two mitmproxy processes, seconds on a busy machine); it
        # was 67 s when TIME_WAIT stopped it.
        assert time.monotonic() - started < 30
        assert workers_seen(again) == {"1", "2"}
    finally:
        again.stop()


def test_a_worker_that_keeps_dying_is_started_again_ever_later(caplog):
    """The back-off: 0.5 s after the first quick death, then twice as long each time."""
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    supervisor = workers.Supervisor(1, lambda n: command, dict(os.environ), grace=5)

    async def run_for(seconds: float) -> int:
        asyncio.get_running_loop().call_later(seconds, supervisor._stop, signal.SIGTERM)
        return await supervisor.run()

    with caplog.at_level(logging.INFO, logger="s3multi.workers"):
        assert asyncio.run(run_for(2.5)) == 0
    delays = re.findall(
        r"worker 1 \(pid \d+\) exited with status 3 after [\d.]+s; "
        r"starting it again in ([\d.]+)s",
        caplog.text,
    )
    assert delays == ["0.5", "1", "2"]


def test_workers_do_not_share_a_port_something_else_listens_on(tmp_path):
    """SO_REUSEPORT would let them share it with a proxy left running: refused first."""
    config = write_config(tmp_path / "c.json", ["http://127.0.0.1:9"])
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--workers", "2"]
        command += ["--port", f"127.0.0.1:{port}"]
        done = subprocess.run(command, capture_output=True, text=True, env=proxy_env(), timeout=60)
    assert done.returncode == 1
    assert f"s3-multi: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "2 workers" not in done.stderr  # none was started


def test_a_config_that_workers_refuse_at_start_stops_the_command(tmp_path):
    """Checked only when a worker starts (a users object in no metaBucket): refused once, not
    started again and again."""
    config = write_config(tmp_path / "c.json", ["http://127.0.0.1:9"])
    command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--workers", "2"]
    command += ["--port", f"127.0.0.1:{free_port()}", "--users", "s3://nowhere/users.yaml"]
    env = {**proxy_env(), "HOME": str(tmp_path)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "users: s3://nowhere/users.yaml: must be an object in the primary's metaBucket" in (
        done.stderr
    )
    assert "refused its config (above): stopping" in done.stderr
    assert "starting it again" not in done.stderr


def test_a_bad_config_stops_the_command_before_any_worker_with_a_users_file_given(tmp_path):
    config = tmp_path / "c.json"
    backend = {"name": "p", "access": "a", "secret": "s", "endpoint": "http://127.0.0.1:9"}
    config.write_text(json.dumps({"backends": [{**backend, "rgion": "x"}]}))
    users = tmp_path / "users.yaml"
    users.write_text("users: []\n")
    command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--workers", "2"]
    command += ["--port", f"127.0.0.1:{free_port()}", "--users", str(users)]
    env = {**proxy_env(), "HOME": str(tmp_path)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "unknown field 'rgion', did you mean 'region'?" in done.stderr
    assert "2 workers" not in done.stderr  # none was started
