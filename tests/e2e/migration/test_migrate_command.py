"""`s3-multi migrate`: a drain of a few hundred objects from the fallbacks to the primary, killed
part-way and run again to the same end; what it leaves (the primary's own keys, deleted keys,
keys an earlier fallback serves); --dry-run, --delete-source, its progress line on a terminal;
and a drain beside clients writing through the proxy."""

from __future__ import annotations

import hashlib
import os
import pty
import random
import select
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.migration import MIB, head_or_none, migrating_config, stored_sha256
from tests.support.processes import REPO, VENV_BIN, child_env

pytestmark = pytest.mark.e2e
COUNT = 300


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def migrate_command(config, *args: str) -> list[str]:
    """The drain; tests give it their --bucket: the servers are the whole session's."""
    return [str(VENV_BIN / "s3-multi"), "migrate", "--config", str(config), *args]


def start_migrate(config, *args: str) -> subprocess.Popen:
    """A drain running; its output (stdout and stderr together) to read when it ends."""
    return subprocess.Popen(
        migrate_command(config, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
        cwd=REPO,
    )


def migrate(config, *args: str, status: int = 0) -> str:
    """Run a drain to its end; its output (stdout then stderr)."""
    done = subprocess.run(
        migrate_command(config, *args),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == status, done.stdout + done.stderr
    return done.stdout + done.stderr


def place(server, bucket: str, objects: dict[str, bytes]) -> None:
    """The objects on `server` alone (the bucket made there if need be), put in parallel."""
    if not has_bucket(server, bucket):
        server.client().create_bucket(Bucket=bucket)
    s3 = server.client()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()
            )
        )


def objects_of(server, bucket: str) -> dict[str, str]:
    """Key -> ETag of every object of the bucket on `server` (none without the bucket)."""
    found: dict[str, str] = {}
    if not has_bucket(server, bucket):
        return found
    for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return found


@pytest.fixture
def old_store(backends, bucket, tmp_path):
    """COUNT objects on the secondary (a few of a MiB and more, the rest small, some in
    "directories"), and the config of a proxy in front of the three backends."""
    rng = random.Random(13)
    objects = {
        f"{'photos/' if i % 3 else ''}{i:04d}.bin": os.urandom(
            MIB + rng.randrange(MIB) if i % 50 == 0 else rng.randrange(1, 20_000)
        )
        for i in range(COUNT)
    }
    place(backends[1], bucket, objects)
    return objects, migrating_config(tmp_path / "c.json", backends, migrate="off")


@pytest.mark.slow
@pytest.mark.topologies("seaweedfs-primary", "seaweedfs-fallbacks")  # each kind on one side
def test_a_drain_killed_part_way_resumes_to_the_same_end(old_store, backends, bucket, run_proxy):
    objects, config = old_store
    primary, secondary, tertiary = backends
    # What the drain must leave: a key the primary has its own version of, a key deleted
    # through the proxy, and a key the tertiary has too (the secondary's is what reads serve).
    put_direct(primary, bucket, "0001.bin", b"the primary's own")
    proxy = run_proxy(config)
    proxy.client().delete_object(Bucket=bucket, Key="photos/0002.bin")
    put_direct(tertiary, bucket, "photos/0004.bin", b"an older copy on the tertiary")
    wanted = {k: v for k, v in objects.items() if k not in ("0001.bin", "photos/0002.bin")}

    first = start_migrate(config, "--jobs", "2", "--bucket", bucket)
    try:
        deadline = time.monotonic() + 120
        while len(objects_of(primary, bucket)) < COUNT // 4:
            assert first.poll() is None, "the drain ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        first.kill()  # SIGKILL: nothing of it can tidy up
        first.communicate()
    copied_first = len(objects_of(primary, bucket)) - 1  # without the primary's own key
    assert 0 < copied_first < len(wanted)

    second = migrate(config, "--bucket", bucket)
    assert f"copied {len(wanted) - copied_first} objects" in second
    assert f"{copied_first} already copied" in second
    assert "1 another version on the primary" in second and "1 deleted (tombstone)" in second
    assert "failed 0" in second

    on_primary = objects_of(primary, bucket)
    assert set(on_primary) == {*wanted, "0001.bin"}
    on_secondary = objects_of(secondary, bucket)
    for key in wanted:
        assert on_primary[key] == on_secondary[key], key
    for key in ("0000.bin", "photos/0004.bin", "0150.bin"):  # by hash, large ones too
        assert stored_sha256(primary, bucket, key) == sha(wanted[key])
    assert primary.client().get_object(Bucket=bucket, Key="0001.bin")["Body"].read() == (
        b"the primary's own"
    )
    assert head_or_none(primary, bucket, "photos/0002.bin") is None

    third = migrate(config, "--bucket", bucket)
    assert "copied 0 objects" in third and f"{len(wanted)} already copied" in third


def test_a_dry_run_writes_nothing(backends, bucket, tmp_path):
    primary, secondary, _ = backends
    put_direct(secondary, bucket, "a.txt", b"aaa")
    put_direct(secondary, bucket, "dir/b.txt", b"bb")
    config = migrating_config(tmp_path / "c.json", backends, migrate="off")
    out = migrate(config, "--dry-run", "--bucket", bucket)
    assert out.startswith(f"migrating secondary, tertiary -> primary, buckets {bucket} (dry run)")
    assert f"would create the bucket {bucket} on primary" in out
    assert f"would copy /{bucket}/a.txt (3 bytes) from secondary" in out
    assert f"would copy /{bucket}/dir/b.txt (2 bytes) from secondary" in out
    assert "would copy 2 objects (5 B), skipped 0, failed 0" in out
    assert "dry run: nothing was written" in out
    assert not has_bucket(primary, bucket)
    every = migrate(config, "--dry-run", "--from", "secondary")  # every bucket it has
    assert every.startswith("migrating secondary -> primary, every bucket (dry run)")
    assert f"would copy /{bucket}/dir/b.txt (2 bytes) from secondary" in every
    assert not has_bucket(primary, bucket)


def test_delete_source_deletes_only_what_is_verified_on_the_primary(
    backends, bucket, tmp_path, run_proxy
):
    primary, secondary, tertiary = backends
    objects = {f"k{i}.bin": os.urandom(1000 + i) for i in range(20)}
    place(secondary, bucket, objects)
    put_direct(tertiary, bucket, "k3.bin", b"the tertiary's, shadowed by the secondary's")
    primary.client().create_bucket(Bucket=bucket)
    primary.client().put_object(Bucket=bucket, Key="k0.bin", Body=b"the primary's own")
    config = migrating_config(tmp_path / "c.json", backends, migrate="on-read")
    proxy = run_proxy(config)
    assert (
        proxy.client().get_object(Bucket=bucket, Key="k1.bin")["Body"].read() == (objects["k1.bin"])
    )  # copied on read: its source goes once it is verified
    deadline = time.monotonic() + 30
    while head_or_none(primary, bucket, "k1.bin") is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    shadowed = migrate(config, "--delete-source", "--bucket", bucket, "--from", "tertiary")
    assert "copied 0 objects" in shadowed and "1 served from secondary" in shadowed
    out = migrate(config, "--delete-source", "--bucket", bucket)
    assert "copied 18 objects" in out, out
    # k0.bin, and the tertiary's k3.bin (the secondary's is on the primary by then)
    assert "1 already copied, 2 another version on the primary" in out
    assert "deleted from the fallback once copied: 19" in out
    assert objects_of(secondary, bucket).keys() == {"k0.bin"}  # the primary had its own
    assert has_object(tertiary, bucket, "k3.bin")
    for key, body in objects.items():
        if key != "k0.bin":
            assert primary.client().get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_the_progress_line_on_a_terminal(backends, bucket, tmp_path):
    put_direct(backends[1], bucket, "one.txt", b"1")
    config = migrating_config(tmp_path / "c.json", backends, migrate="off")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        migrate_command(config, "--bucket", bucket),
        stdout=terminal,
        stderr=terminal,
        env=child_env(COLUMNS="100"),
        cwd=REPO,
    )
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        assert ready, "no output for 60 s"
        try:
            piece = os.read(controller, 4096)
        except OSError:  # the terminal is gone with the process
            break
        if not piece:
            break
        shown += piece
    os.close(controller)
    assert process.wait(30) == 0
    text = shown.decode()
    assert "\r\x1b[K[" in text  # the line redrawn in place, with its bar
    assert "1/1 object, 1 B of 1 B" in text
    assert "copied 1 object (1 B), skipped 0, failed 0" in text


def test_unknown_fallback_and_bad_config_are_named(backends, tmp_path):
    config = migrating_config(tmp_path / "c.json", backends, migrate="off")
    out = migrate(config, "--from", "nowhere", status=2)
    assert "no fallback named 'nowhere' (fallbacks: secondary, tertiary)" in out
    (tmp_path / "bad.json").write_text('{"backends": []}')
    assert "backends: must be a non-empty list" in migrate(tmp_path / "bad.json", status=2)


@pytest.mark.topologies("moto", "seaweedfs-primary")
def test_clients_writing_through_the_proxy_during_a_drain_win(
    old_store, backends, bucket, run_proxy
):
    objects, config = old_store
    primary = backends[0]
    proxy = run_proxy(config)
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    written = sorted(objects)[::15]  # 20 keys, written while the drain runs
    drain = start_migrate(config, "--jobs", "4", "--bucket", bucket)

    def write() -> None:
        for key in written:
            client.put_object(Bucket=bucket, Key=key, Body=f"the client's {key}".encode())

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(120)
    out, _ = drain.communicate(timeout=300)
    assert drain.returncode == 0, out
    for key in written:
        stored = primary.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored == f"the client's {key}".encode(), key
    assert set(objects_of(primary, bucket)) == set(objects)
    on_primary, on_secondary = objects_of(primary, bucket), objects_of(backends[1], bucket)
    for key in set(objects) - set(written):
        assert on_primary[key] == on_secondary[key], key


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_drain_stopped_by_a_signal_says_so(old_store, backends, bucket, stop):
    _, config = old_store
    drain = start_migrate(config, "--jobs", "1", "--bucket", bucket)
    deadline = time.monotonic() + 60
    while not objects_of(backends[0], bucket):
        assert time.monotonic() < deadline and drain.poll() is None
        time.sleep(0.05)
    drain.send_signal(stop)
    out, _ = drain.communicate(timeout=60)
    assert drain.returncode == 130, out
    assert "interrupted: copied " in out
    on_primary, on_secondary = objects_of(backends[0], bucket), objects_of(backends[1], bucket)
    assert 0 < len(on_primary) < COUNT
    assert all(on_primary[key] == on_secondary[key] for key in on_primary)  # whole copies only
