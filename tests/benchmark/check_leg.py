"""The check leg: `s3-multi check` beside `rclone check` on the same two SeaweedFS buckets, and
`s3-multi check` of a million keys that the fake listing server (`fake_listing`) lists, for its
peak RSS.

Each command runs as a child process, measured from outside: its wall time, its CPU time (from
wait4: its own and its children's) and its peak RSS (the kernel's high-water mark, VmHWM, summed
over its processes). Both backends hold the same keys
(under `check/` of the benchmark's bucket, in 20 "directories"); s3-multi compares them as a
primary and its replica, so it compares every key's size and ETag, as rclone check compares size
and MD5. rclone runs both ways it lists: directory by directory (its default, which the target
is set against) and `--fast-list` (one listing, as s3-multi lists; the ratio is said too). Runs
alternate; medians are reported, ratios are medians of per-run ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from addon.local.servers import free_port, s3_client, wait_for_port
from tests.benchmark.backends import WeedPair
from tests.benchmark.http1 import BUCKET
from tests.benchmark.measurement import peak_rss_kb, process_tree
from tests.benchmark.report import markdown, number, run_ratios
from tests.benchmark.suite import ROOT, VENV_BIN, child_env

# Under a prefix of the benchmark's own bucket: a bucket of its own would be a SeaweedFS collection
# of its own, which needs volumes the benchmark's servers are not set up to grow.
CHECK_PREFIX = "check/"
MILLION = 1_000_000
OURS, RCLONE, RCLONE_FAST = "s3-multi check", "rclone check", "rclone check --fast-list"
RSS_TARGET_MB = 150
KEYS_TARGET = 1.0  # s3-multi's keys/s over rclone's


@dataclass(frozen=True)
class Ran:
    seconds: float
    cpu: float  # user + system, of the command's process and its children
    rss_mb: float  # the peak of its largest process

    def rate(self, keys: int) -> float:
        return keys / self.seconds


def measured(command: Sequence[str], env: dict[str, str], log: Path) -> Ran:
    """Run `command` to its end (it must succeed); what it took. The peak RSS is the sum of the
    VmHWM of the command's processes (s3-multi check parses pages in forked processes, whose
    pages shared with it count in each), read every 20 ms while it runs: wait4's ru_maxrss
    would count the benchmark's own memory, which the child had until its exec."""
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
    peaks: dict[int, int] = {}
    while True:
        for pid in process_tree(process.pid):
            peaks[pid] = max(peaks.get(pid, 0), peak_rss_kb([pid]))
        finished, status, usage = os.wait4(process.pid, os.WNOHANG)
        if finished:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        text = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{command[0]} exited {os.waitstatus_to_exitcode(status)}:\n{text}")
    return Ran(seconds, usage.ru_utime + usage.ru_stime, sum(peaks.values()) / 1024)


def place(pair: WeedPair, keys: int) -> None:
    """`keys` objects, the same on both backends, 16 PUTs at a time."""
    bodies = {
        f"{CHECK_PREFIX}dir{n % 20:02d}/key{n:07d}": os.urandom(64 + n % 512) for n in range(keys)
    }
    for backend in pair.backends:
        s3 = s3_client(backend.endpoint, backend.keys.access, backend.keys.secret)

        def put(item: tuple[str, bytes], s3=s3) -> None:
            for attempt in range(5):  # SeaweedFS answers 500 now and then under load
                try:
                    s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1])
                    return
                except ClientError:
                    if attempt == 4:
                        raise
                    time.sleep(0.5)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, bodies.items()))


def s3_multi_config(workdir: Path, endpoints: Sequence[tuple[str, str, str]]) -> Path:
    """The two as a primary and its replica: `endpoints` are (endpoint, access, secret)."""
    entries = []
    for n, (endpoint, access, secret) in enumerate(endpoints):
        entry = {"name": f"side{n}", "access": access, "secret": secret, "endpoint": endpoint}
        entry |= {"usePathStyle": True}
        entry |= {"metaBucket": "bench-check-meta"} if n == 0 else {"replicate": "async"}
        entries.append(entry)
    path = workdir / f"check-{len(list(workdir.glob('check-*.json')))}.json"
    path.write_text(json.dumps({"backends": entries}))
    return path


def rclone_env(endpoints: Sequence[tuple[str, str, str]], provider: str) -> dict[str, str]:
    """Remotes side0: and side1: in variables, no config file."""
    env = child_env(RCLONE_CONFIG="/dev/null")
    for n, (endpoint, access, secret) in enumerate(endpoints):
        prefix = f"RCLONE_CONFIG_SIDE{n}_"
        env |= {
            prefix + "TYPE": "s3",
            prefix + "PROVIDER": provider,
            prefix + "ACCESS_KEY_ID": access,
            prefix + "SECRET_ACCESS_KEY": secret,
            prefix + "ENDPOINT": endpoint,
            prefix + "REGION": "us-east-1",
            prefix + "FORCE_PATH_STYLE": "true",
            prefix + "LIST_VERSION": "2",
        }
    return env


def run_all(
    endpoints: Sequence[tuple[str, str, str]],
    workdir: Path,
    bucket: str,
    provider: str,
    runs: int,
    prefix: str = "",
) -> dict[str, list[Ran]]:
    config = s3_multi_config(workdir, endpoints)
    env = rclone_env(endpoints, provider)
    # Compiled once first, as an installed package is: where the environment says not to write
    # bytecode (PYTHONDONTWRITEBYTECODE), each run would compile the addon's modules again.
    python = str(VENV_BIN / "python")
    subprocess.run([python, "-m", "compileall", "-q", "addon"], cwd=ROOT, check=True)
    ours = [str(VENV_BIN / "s3-multi"), "check", "--config", str(config), "--bucket", bucket]
    ours += ["--prefix", prefix] if prefix else []
    where = f"{bucket}/{prefix}"
    rclone = [str(VENV_BIN / "rclone"), "check", f"side0:{where}", f"side1:{where}"]
    rclone += ["--log-level", "ERROR"]
    commands = {OURS: (ours, child_env()), RCLONE: (rclone, env)}
    commands[RCLONE_FAST] = ([*rclone, "--fast-list"], env)
    ran: dict[str, list[Ran]] = {name: [] for name in commands}
    for run in range(runs):
        for name, (command, environment) in commands.items():
            log = workdir / f"{name.replace(' ', '-')}-{bucket}-{run}.log"
            ran[name].append(measured(command, environment, log))
    return ran


def seaweedfs_leg(pair: WeedPair, workdir: Path, keys: int, runs: int) -> dict[str, list[Ran]]:
    place(pair, keys)
    endpoints = [(b.endpoint, b.keys.access, b.keys.secret) for b in pair.backends]
    return run_all(endpoints, workdir, BUCKET, "SeaweedFS", runs, CHECK_PREFIX)


def million_leg(workdir: Path, keys: int = MILLION) -> dict[str, list[Ran]]:
    """Both sides listed by one fake listing server (the same keys in two buckets' names)."""
    port = free_port()
    command = [str(VENV_BIN / "python"), "-m", "tests.benchmark.fake_listing"]
    command += ["--port", str(port), "--keys", str(keys), "--bucket", "million"]
    fake = subprocess.Popen(command, cwd=ROOT, env=child_env())
    try:
        wait_for_port(port, process=fake)
        endpoint = f"http://127.0.0.1:{port}"
        endpoints = [(endpoint, "AKFAKE0", "fake-secret-0"), (endpoint, "AKFAKE1", "fake-secret-1")]
        return run_all(endpoints, workdir, "million", "Other", runs=1)
    finally:
        fake.terminate()
        fake.wait()


def _median(runs: Sequence[Ran], pick) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(pick(r) for r in runs)


def table(title: str, ran: dict[str, list[Ran]], keys: int) -> str:
    rows = [
        [
            name,
            number(_median(runs, lambda r: r.seconds), 2),
            number(_median(runs, lambda r: r.rate(keys))),
            number(_median(runs, lambda r: r.cpu), 2),
            number(max(r.rss_mb for r in runs)),
        ]
        for name, runs in ran.items()
    ]
    header = [title, "wall (s)", "keys/s", "CPU (s)", "peak RSS (MB)"]
    return markdown(header, rows)


def report(
    weed: dict[str, list[Ran]], keys: int, million: dict[str, list[Ran]], many: int = MILLION
) -> list[str]:
    """The check section: both tables and the two targets."""
    lines = ["### s3-multi check", ""]
    lines += [table(f"check of {keys:,} keys, two SeaweedFS (medians)", weed, keys), ""]
    lines += [table(f"check of {many:,} keys, fake listing", million, many), ""]

    # The median over runs of ours / theirs, each pair from the same run: the target is against
    # rclone check as it runs by default; against --fast-list, said beside it.
    def ratio(theirs: str) -> float:
        ours = [r.rate(keys) for r in weed[OURS]]
        return run_ratios(ours, [r.rate(keys) for r in weed[theirs]]) or 0.0

    rss = max(r.rss_mb for r in million[OURS])
    lines.append("Targets (check):")
    lines.append("")
    mark = "✓" if ratio(RCLONE) >= KEYS_TARGET else "✗"
    lines.append(
        f"- {mark} keys compared per second, s3-multi check / rclone check: "
        f"{ratio(RCLONE):.2f} (target >= {KEYS_TARGET:g}); "
        f"s3-multi check / rclone check --fast-list: {ratio(RCLONE_FAST):.2f}"
    )
    mark = "✓" if rss <= RSS_TARGET_MB else "✗"
    lines.append(
        f"- {mark} peak RSS of s3-multi check, {many:,} keys (MB): {rss:.0f} "
        f"(target <= {RSS_TARGET_MB})"
    )
    return lines
