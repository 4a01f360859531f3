"""Real outages on SeaweedFS (killed with SIGKILL, started again with its data, ports and keys):
a fallback killed is skipped at once and used again after a probe; the primary killed, reads are
answered by a replica certified in sync (the flow comment says failover), writes get 503 at once,
a key deleted before the outage is not served, an uncertified replica gives 503; the primary
restarted, writes resume within a probe interval. Each change of state is logged once.

The replica gets the writes and deletes through the replication, and its certificate from the
proxies' own renewal; what it lacks in an outage (an async replica's lag) is written to the
primary directly.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from addon.config.settings import Backend
from addon.local.seaweedfs import SeaweedServer, start_seaweed_servers, weed_binary
from addon.replication.certificates import KEY
from addon.upstream.health import PROBE_EVERY, PROBE_TIMEOUT
from tests.support.direct import has_object, put_direct
from tests.support.proxy import Proxy
from tests.support.restartable import kill, restart
from tests.support.status import sample, status

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="SeaweedFS's weed is not installed")
META, DR_META = "s3multi-meta", "s3multi-dr-meta"
TIMEOUTS = {"connectTimeout": 2, "responseTimeout": 5, "idleTimeout": 5}
BUCKET = "photos"


@dataclass
class World:
    main: SeaweedServer
    dr: SeaweedServer
    old: SeaweedServer
    certified: Proxy  # [main, dr (certified)]
    uncertified: Proxy  # [main, dr (its certificate is looked for where there is none)]
    with_fallback: Proxy  # [main, dr (certified), old]
    no_meta: Proxy  # [main (no metaBucket), old]


def entry(server: SeaweedServer, **fields) -> dict:
    return {
        "name": server.name,
        "access": server.access,
        "secret": server.secret,
        "endpoint": server.endpoint,
        "usePathStyle": True,
        **TIMEOUTS,
        **fields,
    }


def backend(server: SeaweedServer, index: int, **fields) -> Backend:
    return Backend(
        index, server.name, server.access, server.secret, server.endpoint, use_path_style=True,
        **fields,
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(run_proxy, tmp_path_factory) -> Iterator[World]:
    servers = start_seaweed_servers(["main", "dr", "old"])
    main, dr, old = servers
    for server in servers:
        server.client().create_bucket(Bucket=BUCKET)
    path = tmp_path_factory.mktemp("failover")

    def proxy(name: str, *entries: dict) -> Proxy:
        config = path / f"{name}.json"
        config.write_text(json.dumps({"backends": list(entries)}))
        return run_proxy(config)

    primary = entry(main, metaBucket=META)
    replica = entry(dr, metaBucket=DR_META, replicate="async")
    elsewhere = entry(dr, replicate="async")  # no metaBucket: never certified
    proxies: list[Proxy] = []
    try:
        proxies += [
            proxy("certified", primary, replica),
            proxy("uncertified", primary, elsewhere),
            proxy("with-fallback", primary, replica, entry(old)),
            proxy("no-meta", entry(main), entry(old)),
        ]
        yield World(main, dr, old, *proxies)
    finally:
        for running in proxies:  # before their backends: stopping, a proxy still writes to them
            running.stop()
        for server in servers:
            server.stop()


def get(proxy: Proxy, key: str, method: str = "GET") -> tuple[int, str, bytes, float]:
    """(status, error code, body, seconds) of a GET or HEAD through the proxy."""
    started = time.monotonic()
    client = proxy.client()
    try:
        if method == "HEAD":
            client.head_object(Bucket=BUCKET, Key=key)
            body = b""
        else:
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return 200, "", body, time.monotonic() - started
    except ClientError as e:
        answer = e.response
        code = answer.get("Error", {}).get("Code", "")
        message = answer.get("Error", {}).get("Message", "").encode()
        return (
            answer["ResponseMetadata"]["HTTPStatusCode"],
            code,
            message,
            time.monotonic() - started,
        )


def put(proxy: Proxy, key: str) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        proxy.client().put_object(Bucket=BUCKET, Key=key, Body=b"new")
        return 200, "", time.monotonic() - started
    except ClientError as e:
        answer = e.response
        code = answer.get("Error", {}).get("Message", "")
        return answer["ResponseMetadata"]["HTTPStatusCode"], code, time.monotonic() - started


def writable(server: SeaweedServer) -> bool:
    try:
        put_direct(server, BUCKET, "restart-probe", b"")
        return True
    except (BotoCoreError, ClientError):
        return False


def ready(proxy: Proxy) -> tuple[int, dict]:
    answer = status(proxy.port, "/-/ready")
    return answer.status, json.loads(answer.body)


def certified(world: World) -> None:
    """Wait until the proxies whose replica has a metaBucket have certified it (their own
    renewal, every 5 s, once nothing is pending for it) and read it as certified."""
    deadline = time.monotonic() + 30
    for proxy in (world.certified, world.with_fallback):
        while not any(b.get("certified") for b in ready(proxy)[1]["backends"]):
            assert time.monotonic() < deadline, "the proxy never certified the replica"
            time.sleep(0.2)


def test_a_killed_fallback_is_skipped_at_once_and_used_again_after_a_probe(world):
    proxy, old = world.no_meta, world.old
    put_direct(old, BUCKET, "only-on-old", b"old bytes")
    assert get(proxy, "only-on-old")[:3] == (200, "", b"old bytes")

    kill(old)
    code, error, _, _ = get(proxy, "only-on-old")
    assert (code, error) == (404, "NoSuchKey")  # refused: marked down at once, then skipped
    skips = [get(proxy, "only-on-old") for _ in range(5)]
    assert all((c, e) == (404, "NoSuchKey") for c, e, _, _ in skips)
    slowest_skip = max(s for _, _, _, s in skips)
    assert slowest_skip < TIMEOUTS["connectTimeout"]  # never a wait for a timeout
    log = proxy.log()
    assert log.count("backend old is down: ") == 1 and "(at once)" in log
    assert log.count("old down (skipped)] answered by main (not found anywhere)") >= len(skips)

    restarted_in = restart(old)  # until it answers S3 again, asked directly
    answering = time.monotonic()
    while get(proxy, "only-on-old")[0] != 200:
        assert time.monotonic() - answering < PROBE_EVERY + PROBE_TIMEOUT + 5
        time.sleep(0.1)
    used_again = time.monotonic() - answering
    assert used_again < 2 * PROBE_EVERY  # loosely: one probe interval, and its probe
    log = proxy.log()
    assert log.count("backend old is down: ") == 1
    assert log.count("backend old is up again after ") == 1
    print(
        f"\nkilled fallback: skipped in at most {slowest_skip * 1000:.0f} ms; SeaweedFS answered "
        f"{restarted_in:.1f} s after its restart; used again {used_again:.2f} s after that"
    )


def test_the_primary_killed_reads_fail_over_to_the_certified_replica_only(world):
    main, dr, old = world.main, world.dr, world.old
    # Written through the proxy: the replication copies them to the replica (async).
    for key in ("both", "gone"):
        world.certified.client().put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    deadline = time.monotonic() + 30
    while not (has_object(dr, BUCKET, "both") and has_object(dr, BUCKET, "gone")):
        assert time.monotonic() < deadline, "the replication never copied them"
        time.sleep(0.1)
    put_direct(old, BUCKET, "gone", b"an old copy")  # a fallback's copy, deleted below
    put_direct(main, BUCKET, "main-only", b"lagging")  # as an async replica's lag leaves it
    # Deleted through the proxy before the outage: the replica gets the delete before its
    # client hears; the fallback keeps its copy, hidden by a tombstone on the primary.
    world.with_fallback.client().delete_object(Bucket=BUCKET, Key="gone")
    assert has_object(old, BUCKET, "gone") and not has_object(main, BUCKET, "gone")
    assert not has_object(dr, BUCKET, "gone")
    assert get(world.with_fallback, "gone")[:2] == (404, "NoSuchKey")
    certified(world)
    with pytest.raises(ClientError) as denied:  # the replica's metaBucket is the proxy's
        world.certified.client().get_object(Bucket=DR_META, Key=KEY)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    kill(main)
    outage = time.monotonic()
    for proxy in (world.certified, world.with_fallback, world.uncertified, world.no_meta):
        get(proxy, "both")  # each finds the primary refusing: marked down at once
    # Certified replica: hits and its 404s are the answers; the comment says failover.
    assert get(world.certified, "both")[:3] == (200, "", b"both")
    assert get(world.certified, "both", "HEAD")[0] == 200
    assert get(world.certified, "gone")[:2] == (404, "NoSuchKey")
    assert get(world.certified, "main-only")[:2] == (404, "NoSuchKey")  # async lag: accepted
    log = world.certified.log()
    # The first finds it unreachable, unless the proxy's own background work (certificate
    # renewal, replication) found that first and marked it down.
    first = re.search(rf"GetObject /{BUCKET}/both via \[main (unreachable|down \(skipped\))", log)
    assert first, log
    assert f"GetObject /{BUCKET}/both via [main down (skipped), dr 200" in log
    assert "answered by dr (failover: main down)" in log
    listing = world.certified.client().list_objects_v2(Bucket=BUCKET)
    assert [o["Key"] for o in listing["Contents"]] == ["both"]
    assert listing["ResponseMetadata"]["HTTPHeaders"]["x-s3multi-failover"] == "dr"
    assert f"ListObjectsV2 /{BUCKET} via [main down (skipped), dr 200" in world.certified.log()
    names = [b["Name"] for b in world.certified.client().list_buckets()["Buckets"]]
    assert BUCKET in names and DR_META not in names  # the replica's metaBucket is the proxy's
    assert "(failover: main down)" in world.certified.log().split("ListBuckets /")[-1]
    # Writes: 503 at once.
    writes = [put(world.certified, f"new-{i}") for i in range(3)]
    assert all(w[:2] == (503, "Backend main is down.") for w in writes)  # not tried: "down"
    slowest_write = max(w[2] for w in writes)
    assert slowest_write < TIMEOUTS["connectTimeout"]  # never a wait for a timeout
    code, body = ready(world.certified)
    assert (code, body["status"], body["failover"]) == (200, "degraded", ["dr"])
    assert [(b["name"], b["role"], b["up"]) for b in body["backends"]] == [
        ("main", "primary", False),
        ("dr", "replica", True),
    ]
    scraped = status(world.certified.port, "/-/metrics").body.decode()
    assert sample(scraped, "s3multi_failover_reads_total", backend="dr") >= 5
    assert sample(scraped, "s3multi_backend_up", backend="main") == 0

    # A fallback that is not a replica may hold a deleted key's copy: not served, 503.
    assert get(world.with_fallback, "both")[:3] == (200, "", b"both")
    code, error, message, _ = get(world.with_fallback, "gone")
    assert (code, error) == (503, "ServiceUnavailable")
    assert b"cannot be checked against deletes" in message
    with pytest.raises(ClientError) as refused:
        world.with_fallback.client().list_objects_v2(Bucket=BUCKET)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

    # The replica has no metaBucket, so no certificate: 503, even for what dr has.
    for key in ("both", "gone"):
        code, error, message, _ = get(world.uncertified, key)
        assert (code, error) == (503, "ServiceUnavailable")
        assert b"no replica is certified in sync" in message
    assert ready(world.uncertified)[0] == 503

    # No metaBucket: a fallback's copy is served, a miss is 503 (never 404).
    put_direct(old, BUCKET, "on-old", b"older copy")
    assert get(world.no_meta, "on-old")[:3] == (200, "", b"older copy")
    assert get(world.no_meta, "nowhere")[:2] == (503, "ServiceUnavailable")

    # Still served well after the certificate's 15 s (the primary failed while it was valid).
    time.sleep(max(0.0, 17 - (time.monotonic() - outage)))
    assert get(world.certified, "both")[:3] == (200, "", b"both")

    # The primary back: writes resume within a probe interval of its first answer.
    # SeaweedFS answers a ListBuckets some seconds before it takes writes again (its volumes
    # register with the master): the clock starts when it takes a write asked directly.
    restart(main)
    deadline = time.monotonic() + 60
    while not writable(main):
        assert time.monotonic() < deadline, "the restarted primary never took a write"
        time.sleep(0.05)
    answering = time.monotonic()
    seen = []
    while (tried := put(world.certified, "after"))[0] != 200:
        seen.append((round(time.monotonic() - answering, 2), *tried[:2]))
        assert time.monotonic() - answering < PROBE_EVERY + PROBE_TIMEOUT + 5, seen
        time.sleep(0.05)
    resumed_after = time.monotonic() - answering
    assert resumed_after < 2 * PROBE_EVERY, seen  # loosely: one probe interval, and its probe
    assert get(world.certified, "after")[:3] == (200, "", b"new")
    lines = [line for line in world.certified.log().splitlines() if f"/{BUCKET}/after via" in line]
    assert lines[-1].endswith("answered by main")
    for proxy in (world.certified, world.with_fallback, world.uncertified):
        log = proxy.log()
        assert log.count("backend main is down: ") == 1, log
        assert log.count("backend main is up again after ") <= 1
    assert world.certified.log().count("backend main is up again after ") == 1
    print(
        f"\nprimary killed: writes answered 503 in at most {slowest_write * 1000:.0f} ms; "
        f"after its restart, writes resumed {resumed_after:.2f} s after it answered S3"
    )
