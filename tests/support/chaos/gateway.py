"""The chaos run's deployment: three SeaweedFS servers of its own (a primary with a metaBucket,
an async replica and a sync replica, each replica with a metaBucket for its in-sync
certificate, so that reads fail over to it), and the `s3-multi` command in front of them, as
a user runs it; and what the run asks the proxy (readiness, metrics) and the backends directly."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from addon.local.seaweedfs import SeaweedServer
from tests.support.chaos.history import md5
from tests.support.proxy import Proxy, start_s3_multi
from tests.support.replication import body_or_none, listed
from tests.support.restartable import restartable_seaweeds
from tests.support.status import status

META = "s3multi-meta-chaos"
# Short, so that a killed backend costs a request seconds, not the defaults' 30.
TIMEOUTS = {"connectTimeout": 2, "responseTimeout": 5, "idleTimeout": 5}
WATCHED = ("s3multi_replication_", "s3multi_failover_reads", "s3multi_fallback_hits")


@dataclass
class Deployment:
    primary: SeaweedServer
    async_replica: SeaweedServer
    sync_replica: SeaweedServer
    proxy: Proxy

    @property
    def servers(self) -> tuple[SeaweedServer, SeaweedServer, SeaweedServer]:
        return self.primary, self.async_replica, self.sync_replica

    @property
    def replicas(self) -> tuple[SeaweedServer, SeaweedServer]:
        return self.async_replica, self.sync_replica


def _entry(server: SeaweedServer, meta: str, replicate: str = "") -> dict:
    entry = {
        "name": server.name,
        "access": server.access,
        "secret": server.secret,
        "endpoint": server.endpoint,
        "usePathStyle": True,
        "metaBucket": meta,
        **TIMEOUTS,
    }
    return {**entry, "replicate": replicate} if replicate else entry


def write_config(path: Path, primary, async_replica, sync_replica) -> Path:
    backends = [
        _entry(primary, META),
        _entry(async_replica, f"{META}-async", "async"),
        _entry(sync_replica, f"{META}-sync", "sync"),
    ]
    path.write_text(json.dumps({"backends": backends, "readFailover": True}))
    return path


@contextlib.contextmanager
def deployment(workdir: Path, workers: int) -> Iterator[Deployment]:
    """The servers (quick to restart) and the proxy (`workers` processes), stopped at the end."""
    with restartable_seaweeds(["main", "async", "sync"], quick=True) as (main, asyn, sync):
        config = write_config(workdir / "chaos.json", main, asyn, sync)
        proxy = start_s3_multi(config, workdir, VGW_S3_MULTI_WORKERS=str(workers))
        try:
            yield Deployment(main, asyn, sync, proxy)
        finally:
            proxy.stop()


def readiness(proxy: Proxy) -> dict:
    """The /-/ready body, or {"status": "unanswered", ...} when it is not JSON."""
    answer = status(proxy.port, "/-/ready")
    try:
        return json.loads(answer.body)
    except ValueError:
        return {"status": "unanswered", "http": answer.status}


def watched_metrics(proxy: Proxy) -> dict[str, float]:
    """The replication and failover samples, by name and labels ("name{a=b,c=d}")."""
    text = status(proxy.port, "/-/metrics").body.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(WATCHED) and not s.name.endswith("_created"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                found[f"{s.name}{{{labels}}}"] = s.value
    return found


def held(server: SeaweedServer, bucket: str, keys: list[str]) -> dict[str, str]:
    """What `server` holds of `bucket`, asked directly with its own keys: the MD5 of the bytes
    of each key there (the key space's, and any other it lists)."""
    found = {}
    for key in sorted(set(keys) | set(listed(server, bucket))):
        body = body_or_none(server, bucket, key)
        if body is not None:
            found[key] = md5(body)
    return found
