"""The proxy run as a user runs it (`mitmdump -s addon/multi.py`), its config, its memory."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from addon.local.servers import S3Server, free_port, wait_for_port
from tests.support.clients import s3_client
from tests.support.processes import REPO, VENV_BIN, child_env
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET


@dataclass
class Proxy:
    port: int
    process: subprocess.Popen
    log_path: Path
    confdir: Path | None = None  # mitmproxy's: its CA signs the proxy's HTTPS certificates

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_endpoint(self) -> str:
        """The same port speaks HTTPS to clients that start TLS."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        assert self.confdir is not None
        return str(self.confdir / "mitmproxy-ca-cert.pem")

    def client(self, access: str = ROOT_ACCESS, secret: str = ROOT_SECRET, https: bool = False):
        if https:
            return s3_client(self.https_endpoint, access, secret, verify=self.ca_file)
        return s3_client(self.endpoint, access, secret)

    def rss_mb(self) -> float:
        """The proxy process's resident memory now."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def peak_rss(proxy: Proxy) -> Iterator[list[float]]:
    """Samples the proxy's RSS every 20 ms while the block runs; yields a list holding the peak."""
    peak = [proxy.rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proxy.rss_mb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


def proxy_env() -> dict[str, str]:
    """The proxy's environment: the root keys in the variables the README names, nothing else
    inherited that could change what it does."""
    return child_env(ROOT_ACCESS_KEY_ID=ROOT_ACCESS, ROOT_SECRET_ACCESS_KEY=ROOT_SECRET)


def backend_entry(index: int, server: S3Server | str) -> dict:
    """A config's backend entry for this server (path style); a str is an endpoint where
    nothing listens, named `down-<index>`."""
    if isinstance(server, str):
        entry = {"name": f"down-{index}", "access": "AKDOWN", "secret": "down-secret"}
        entry["endpoint"] = server
    else:
        entry = {"name": server.name, "access": server.access, "secret": server.secret}
        entry["endpoint"] = server.endpoint
    return {**entry, "usePathStyle": True}


def write_config(
    path: Path, backends: Sequence[S3Server | str], settings: dict | None = None, **fields
) -> Path:
    """A config for these servers in this order; a str is an endpoint where nothing listens.
    `fields` go into every backend, `settings` (users, clientTimeout, ...) beside them."""
    entries = [{**backend_entry(i, server), **fields} for i, server in enumerate(backends)]
    path.write_text(json.dumps({"backends": entries, **(settings or {})}))
    return path


def mitmdump_command(
    config: Path | None, port: int, confdir: Path, *, sidecar: bool = False
) -> list[str]:
    """The command line the README gives, on a free port: the S3 endpoint (reverse mode), or
    with `sidecar` the HTTPS_PROXY of an application (regular mode)."""
    if sidecar:
        mode = ["--set", "connection_strategy=lazy"]
    else:
        mode = ["--mode", "reverse:http://127.0.0.1:1", "--set", "keep_host_header=true"]
        mode += ["--set", "connection_strategy=lazy"]
    command = [str(VENV_BIN / "mitmdump"), "-s", str(REPO / "addon" / "multi.py"), *mode]
    command += ["--listen-host", "127.0.0.1", "--listen-port", str(port)]
    command += ["--set", f"confdir={confdir}", "--set", "s3multi_debug=true", "--flow-detail", "0"]
    if config is not None:
        command += ["--set", f"s3multi_config={config}"]
    return command


def refused_to_start(commands: dict[str, list[str]]) -> dict[str, str]:
    """Run each named command line of a proxy given something bad: each must exit non-zero.
    Their outputs (stdout and stderr), by name."""
    outputs = {}
    for name, command in commands.items():
        done = subprocess.run(
            command, capture_output=True, text=True, env=proxy_env(), timeout=60, cwd=REPO
        )
        outputs[name] = done.stdout + done.stderr
        assert done.returncode != 0, f"{name} started:\n{outputs[name]}"
    return outputs


# Every proxy a test started: each test's end checks their logs for crashes (crash_lines).
STARTED: list[Proxy] = []
_CRASHES = ("mitmproxy has crashed", "Addon error", "error in script", "Traceback")
_BENIGN = "Exception in callback StreamReaderProtocol.connection_made"  # asyncio, at shutdown


def crash_lines(proxy: Proxy, since: int) -> tuple[list[str], int]:
    """Lines of the proxy's log after offset `since` that say something crashed; the new
    offset. A crash inside mitmproxy is logged, not raised: a request can still be answered."""
    text = proxy.log()
    lines = text[since:].splitlines()
    found, skip = [], False
    for line in lines:
        if _BENIGN in line:
            skip = True  # its traceback follows
        elif line.startswith("["):
            skip = False
        if not skip and any(marker in line for marker in _CRASHES):
            found.append(line)
    return found, len(text)


def start_s3_multi(config: Path, workdir: Path, **env: str) -> Proxy:
    """The `s3-multi` command set up by its environment variables as an operator sets them
    (config, root keys, debug lines) on a free port; `env`: more variables."""
    port = free_port()
    variables = child_env(
        VGW_S3_MULTI_CONFIG=str(config),
        ROOT_ACCESS_KEY=ROOT_ACCESS,
        ROOT_SECRET_KEY=ROOT_SECRET,
        VGW_PORT=f"127.0.0.1:{port}",
        VGW_S3_MULTI_DEBUG="true",
        **env,
    )
    return start_proxy([str(VENV_BIN / "s3-multi")], workdir, variables, port)


def start_proxy(
    command: list[str], workdir: Path, env: dict[str, str], port: int, confdir: Path | None = None
) -> Proxy:
    log_path = workdir / f"proxy-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    proxy = Proxy(port, process, log_path, confdir)
    try:
        wait_for_port(port, process=process)
    except BaseException:
        proxy.stop()
        raise RuntimeError(f"proxy did not start:\n{proxy.log()}") from None
    STARTED.append(proxy)
    return proxy


WEB_PASSWORD = "watch-the-traffic"


def start_mitmweb(backends, workdir: Path, *options: str) -> tuple[Proxy, int]:
    """mitmweb with the addon in front of `backends` (the README's mitmdump line, with mitmweb):
    the proxy, and the port of its web interface (password WEB_PASSWORD)."""
    config = write_config(workdir / "c.json", backends)
    port, web_port = free_port(), free_port()
    command = mitmdump_command(config, port, workdir / "mitmproxy")
    command[0] = str(VENV_BIN / "mitmweb")
    command = [arg for arg in command if arg not in ("--flow-detail", "0")]
    command += ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
    command += ["--set", "web_open_browser=false", "--set", f"web_password={WEB_PASSWORD}"]
    command += [arg for option in options for arg in ("--set", option)]
    return start_proxy(command, workdir, proxy_env(), port), web_port
