"""The benchmark's processes: starting and stopping them, and the proxies and the peer it compares.

Each way of reaching the backends is an `Endpoint`: the port a client talks to, the keys it signs
with there, and the process whose memory and CPU count for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from addon.local.servers import free_port, wait_for_port
from tests.benchmark.http1 import Keys
from tests.benchmark.suite import ROOT_ACCESS, ROOT_SECRET, VENV_BIN, child_env, mitmdump_command
from tests.benchmark.tls import make_certificate

RCLONE_KEYS = Keys("AKRCLONEUNION", "rclone-union-secret")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the benchmark dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    stop_signal: signal.Signals = signal.SIGINT
    grace: float = 15.0  # seconds between the stop signal and SIGKILL

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_service(
    name: str,
    command: list[str],
    port: int,
    log_path: Path,
    *,
    stop_signal: signal.Signals = signal.SIGINT,
    grace: float = 15.0,
    env: dict[str, str] | None = None,
) -> Service:
    """Start `command` and wait until it listens on `port`."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            preexec_fn=_die_with_parent,
        )
    service = Service(name, port, process, log_path, stop_signal, grace)
    try:
        wait_for_port(port, process=process)
    except BaseException:
        service.stop()
        raise RuntimeError(f"{name} did not start:\n{service.log()}") from None
    return service


class Backend(Protocol):
    """One S3 backend as the proxies are configured for it."""

    name: str
    port: int
    keys: Keys
    service: Service

    @property
    def endpoint(self) -> str: ...


@dataclass(frozen=True)
class Endpoint:
    """One way to the backends: where clients connect, the keys they sign with, who serves,
    and whether clients speak HTTPS to it."""

    port: int
    keys: Keys
    service: Service
    tls: bool = False


def direct(backends: Sequence[Backend], workdir: Path, label: str) -> Endpoint:
    """The primary itself, with its own keys."""
    return Endpoint(backends[0].port, backends[0].keys, backends[0].service)


def plain_mitmdump(backends: Sequence[Backend], workdir: Path, label: str) -> Endpoint:
    """mitmdump without the addon in front of the primary: the framework's ceiling.

    `stream_large_bodies=1m`, else it buffers large bodies whole and is no ceiling for them;
    `keep_host_header` passes the Host the client signed, so the primary's keys still verify.
    """
    primary = backends[0]
    port = free_port()
    command = [str(VENV_BIN / "mitmdump"), "--mode", f"reverse:{primary.endpoint}"]
    command += ["--listen-host", "127.0.0.1", "--listen-port", str(port), "-q"]
    for option in ("connection_strategy=lazy", "keep_host_header=true", "stream_large_bodies=1m"):
        command += ["--set", option]
    command += ["--set", f"confdir={workdir / 'mitmproxy'}"]
    name = f"plain mitmdump ({label})"
    service = start_service(name, command, port, _log(workdir, name), env=child_env())
    return Endpoint(port, primary.keys, service)


def quiet(command: list[str]) -> list[str]:
    """The command with `s3multi_debug=false` and `-q`.

    The setting is replaced, not added: mitmproxy rejects a script option given twice and then
    runs without the script, silently.
    """
    command = [c for c in command if c not in ("-q", "--quiet")]
    debug = [i for i, c in enumerate(command) if c.startswith("s3multi_debug=")]
    for i in debug:
        command[i] = "s3multi_debug=false"
    return [*command, *([] if debug else ["--set", "s3multi_debug=false"]), "-q"]


def s3_multi(backends: Sequence[Backend], workdir: Path, label: str) -> Endpoint:
    """`mitmdump -s addon/multi.py` on the backends, as the tests run it, quiet."""
    return _s3_multi_mitmdump(backends, workdir, f"mitmdump -s ({label})")


def s3_multi_copying(backends: Sequence[Backend], workdir: Path, label: str) -> Endpoint:
    """The same with `migrate: on-read` on the fallbacks: whole reads they serve are copied."""
    name = f"mitmdump -s copying ({label})"
    return _s3_multi_mitmdump(backends, workdir, name, {"migrate": "on-read"})


def _s3_multi_mitmdump(
    backends: Sequence[Backend], workdir: Path, name: str, fallbacks: dict[str, str] | None = None
) -> Endpoint:
    return s3_multi_on(_s3_multi_config(backends, workdir, name, fallbacks), workdir, name)


def s3_multi_on(config: Path, workdir: Path, name: str) -> Endpoint:
    """`mitmdump -s addon/multi.py` on a config file, quiet."""
    port = free_port()
    command = quiet(mitmdump_command(config, port, workdir / "mitmproxy"))
    env = child_env(ROOT_ACCESS_KEY_ID=ROOT_ACCESS, ROOT_SECRET_ACCESS_KEY=ROOT_SECRET)
    service = start_service(name, command, port, _log(workdir, name), env=env)
    return Endpoint(port, Keys(ROOT_ACCESS, ROOT_SECRET), service)


def s3_multi_workers(
    workers: int, tls: bool = False
) -> Callable[[Sequence[Backend], Path, str], Endpoint]:
    """A way's `start`: the `s3-multi --workers N` command on the backends; with `tls`, HTTPS
    to clients (mitmproxy terminates it, with its own CA) and to the backends (their HTTPS
    endpoints, `sslSkipVerify`: a self-signed certificate; verifying it would cost once per
    connection).

    Its service is the supervisor; the workers are its children, which the measurement counts
    with it (`measurement.process_tree`). Ready once every worker listens: connections opened
    before would all go to the first.
    """

    def start(backends: Sequence[Backend], workdir: Path, label: str) -> Endpoint:
        name = f"{way_name(workers, tls)} ({label})"
        extra = {"sslSkipVerify": True} if tls else None
        config = _s3_multi_config(backends, workdir, name, extra, every=True, tls=tls)
        port = free_port()
        command = [str(VENV_BIN / "s3-multi"), "--config", str(config), "--workers", str(workers)]
        command += ["--port", f"127.0.0.1:{port}"]
        env = child_env(
            ROOT_ACCESS_KEY_ID=ROOT_ACCESS,
            ROOT_SECRET_ACCESS_KEY=ROOT_SECRET,
            HOME=str(workdir),  # mitmproxy's confdir, ~/.mitmproxy
        )
        service = start_service(name, command, port, _log(workdir, name), env=env)
        deadline = time.monotonic() + 30
        while service.log_path.read_text().count("listening at") < workers:
            if time.monotonic() > deadline:
                service.stop()
                raise RuntimeError(f"{name}: not every worker listens:\n{service.log()}")
            time.sleep(0.1)
        return Endpoint(port, Keys(ROOT_ACCESS, ROOT_SECRET), service, tls)

    return start


def way_name(workers: int, tls: bool = False) -> str:
    """`s3-multi 1 worker`, `s3-multi 2 workers`, `s3-multi 2 workers, HTTPS`."""
    return f"s3-multi {workers} worker{'s' if workers > 1 else ''}" + (", HTTPS" if tls else "")


def _s3_multi_config(
    backends: Sequence[Backend],
    workdir: Path,
    name: str,
    fields: dict[str, Any] | None = None,
    *,
    every: bool = False,
    tls: bool = False,
) -> Path:
    """The backends in order; `fields` of every backend but the primary (`every`: of all);
    `tls`: their HTTPS endpoints."""
    config = workdir / f"{slug(name)}.json"
    entries = [
        {
            "name": b.name,
            "access": b.keys.access,
            "secret": b.keys.secret,
            "endpoint": _endpoint(b, tls),
            "region": b.keys.region,
            "usePathStyle": True,
            **(fields if fields and (n or every) else {}),
        }
        for n, b in enumerate(backends)
    ]
    config.write_text(json.dumps({"backends": entries}))
    return config


def rclone_union(backends: Sequence[Backend], workdir: Path, label: str) -> Endpoint:
    """`rclone serve s3` over an rclone union of the backends: the nearest peer. The same shape
    as s3-multi: writes go to the first (the others are read-only upstreams, `create_policy =
    ff`), reads search the upstreams in order (`search_policy = ff`). Its other settings are
    rclone's defaults (no VFS cache; directory entries cached for 5 minutes)."""
    return _rclone(backends, workdir, f"rclone union ({label})", tls=False)


def rclone_union_tls(backends: Sequence[Backend], workdir: Path, label: str) -> Endpoint:
    """The same over HTTPS, to clients (a self-signed certificate) and to the backends
    (`--no-check-certificate`, as s3-multi's HTTPS way skips verification)."""
    return _rclone(backends, workdir, f"rclone union, HTTPS ({label})", tls=True)


def _rclone(backends: Sequence[Backend], workdir: Path, name: str, tls: bool) -> Endpoint:
    sections = []
    for b in backends:
        endpoint = _endpoint(b, tls)
        sections.append(
            f"[{b.name}]\ntype = s3\nprovider = SeaweedFS\naccess_key_id = {b.keys.access}\n"
            f"secret_access_key = {b.keys.secret}\nendpoint = {endpoint}\n"
            f"region = {b.keys.region}\n"
        )
    upstreams = " ".join([f"{backends[0].name}:", *(f"{b.name}::ro" for b in backends[1:])])
    sections.append(
        f"[union]\ntype = union\nupstreams = {upstreams}\ncreate_policy = ff\nsearch_policy = ff\n"
    )
    config = workdir / f"{slug(name)}.conf"
    config.write_text("\n".join(sections))
    port = free_port()
    keys = RCLONE_KEYS
    command = [str(VENV_BIN / "rclone"), "serve", "s3", "union:", "--addr", f"127.0.0.1:{port}"]
    command += ["--auth-key", f"{keys.access},{keys.secret}", "--config", str(config)]
    command += ["--cache-dir", str(workdir / f"{slug(name)}-cache"), "--log-level", "ERROR"]
    if tls:
        cert, key = make_certificate(workdir / slug(name))
        command += ["--cert", str(cert), "--key", str(key), "--no-check-certificate"]
    service = start_service(
        name, command, port, _log(workdir, name), stop_signal=signal.SIGTERM, env=child_env()
    )
    return Endpoint(port, keys, service, tls)


def _endpoint(backend: Backend, tls: bool) -> str:
    """Its HTTPS endpoint with `tls` (SeaweedFS has one), else its HTTP one."""
    return backend.tls_endpoint if tls else backend.endpoint  # type: ignore[attr-defined]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _log(workdir: Path, name: str) -> Path:
    return workdir / f"{slug(name)}.log"
