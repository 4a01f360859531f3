"""The benchmark's pure parts, without servers: wrk's script and output, the maths, the tables."""

from __future__ import annotations

import pytest

from addon.s3 import sigv4
from tests.benchmark.http1 import Keys, body_length, parse_head, sign, tampered
from tests.benchmark.legs import (
    COPYING,
    DIRECT,
    ONE_WORKER,
    PLAIN,
    RCLONE,
    S3_MULTI,
    S3_MULTI_WORKERS,
    SETUPS,
    SMALL_LEGS,
    Setup,
    large_legs,
)
from tests.benchmark.load import LoadResult, lua_string, parse_wrk, percentile, wrk_script
from tests.benchmark.measurement import Measured, Trip, TripCase, combined
from tests.benchmark.report import (
    Figures,
    copy_on_read,
    markdown,
    peer_targets,
    report,
    rss_table,
    run_ratios,
    targets,
    throughput_table,
)
from tests.benchmark.settings import parse_args

KEYS = Keys("AKTEST", "test-secret")
WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:4000/
  1 threads and 8 connections
  1860 requests in 3.00s, 2.26MB read
Requests/sec:    619.80
wrk-result requests=1860 duration_us=3001000 bytes=2370000 connect=0 read=0 write=0 \
status=2 timeout=0 p50_us=12100 p99_us=25300
"""


def test_wrk_output_parsed_with_its_errors():
    result = parse_wrk(WRK_OUTPUT)
    assert result.counted == 1860
    assert result.per_second == pytest.approx(1860 / 3.001)
    assert (result.p50_ms, result.p99_ms) == (12.1, 25.3)
    assert result.error_count == 2
    assert result.errors == ["wrk: 2 answers with status 400 or more"]


def test_wrk_without_its_result_line_is_a_failure():
    result = parse_wrk("unable to connect to 127.0.0.1:4000 Connection refused\n")
    assert result.counted == 0
    assert result.error_count == 1
    assert "Connection refused" in result.errors[0]


def test_wrk_script_sends_the_signed_request_byte_for_byte():
    body = bytes(range(256)) * 4
    request = sign(KEYS, "PUT", 4000, "k", body=body)
    script = wrk_script(request)
    assert f"wrk.method = {lua_string(b'PUT')}" in script
    assert f"wrk.path = {lua_string(b'/bench/k')}" in script
    authorization = dict(request.headers)["Authorization"]
    assert f"= {lua_string(authorization.encode())}" in script
    assert f"wrk.body = {lua_string(body)}" in script
    assert lua_string(b"Content-Length") not in script  # wrk adds it from the body
    assert "done = function(summary, latency, requests)" in script


def test_lua_string_escapes_every_byte():
    assert lua_string(b'a"\n\\') == '"\\97\\34\\10\\92"'


def test_signed_request_and_its_tampered_twin():
    request = sign(KEYS, "GET", 4000, "k", extra=(("X-Bench-Trace", "t1"),))
    head = request.head().decode()
    assert head.startswith("GET /bench/k HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n")
    headers = dict(request.headers)
    assert headers["X-Amz-Content-SHA256"] == sigv4.EMPTY_SHA256
    assert "Content-Length" not in headers
    bad = dict(tampered(request).headers)
    assert bad["Authorization"][:-1] == headers["Authorization"][:-1]
    assert bad["Authorization"][-1] != headers["Authorization"][-1]
    streamed = dict(sign(KEYS, "PUT", 4000, "big", content_length=5 << 30).headers)
    assert streamed["X-Amz-Content-SHA256"] == sigv4.UNSIGNED_PAYLOAD
    assert streamed["Content-Length"] == str(5 << 30)


def test_response_head_and_body_length():
    status, headers = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\n\r\n")
    assert (status, headers) == (404, {"content-length": "12"})
    assert body_length("GET", status, headers) == 12
    assert body_length("HEAD", 200, headers) == 0
    assert body_length("GET", 200, {"transfer-encoding": "chunked"}) is None


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3
    assert percentile([], 50) is None


def test_ratios_pair_runs_and_skip_missing_figures():
    assert run_ratios([100, 90, 80], [200, 100, 100]) == 0.8
    assert run_ratios([100], [0]) is None
    assert run_ratios([], [100]) is None


def _measured(
    per_second: float,
    rss: dict[str, float],
    front: str = "s3-multi (t)",
    largest: float | None = None,
) -> Measured:
    result = LoadResult(counted=int(per_second * 2), seconds=2.0, p50_ms=1.0, p99_ms=2.0)
    return Measured(result, front, rss, cpu_seconds=0.5, largest_process_mb=largest)


SETUP = Setup(
    "t",
    SETUPS[1].start,
    (DIRECT, PLAIN, S3_MULTI, S3_MULTI_WORKERS, RCLONE),
    ((S3_MULTI, PLAIN), (S3_MULTI, RCLONE), (S3_MULTI, DIRECT)),
    targets=True,
)


def _samples() -> dict:
    get, fallback = SMALL_LEGS[0], SMALL_LEGS[1]
    rss = {"s3-multi (t)": 80.0, "weed primary": 200.0}
    workers = f"{S3_MULTI_WORKERS.name} (t)"
    return {
        ("t", get.name, S3_MULTI_WORKERS.name): [
            _measured(440, {workers: 190.0}, workers, largest=95.0),
            _measured(380, {workers: 170.0}, workers, largest=160.0),
        ],
        ("t", get.name, DIRECT.name): [_measured(5000, {}), _measured(5000, {})],
        ("t", get.name, PLAIN.name): [_measured(1000, {}), _measured(800, {})],
        ("t", get.name, S3_MULTI.name): [_measured(800, rss), _measured(720, rss)],
        ("t", get.name, RCLONE.name): [_measured(400, {}), _measured(400, {})],
        ("t", fallback.name, S3_MULTI.name): [_measured(500, rss), _measured(400, rss)],
        ("t", fallback.name, RCLONE.name): [_measured(250, {}), _measured(250, {})],
    }


def test_throughput_table_ratios_use_the_stand_in_for_ways_without_fallback():
    table = throughput_table(Figures(_samples(), SMALL_LEGS), SETUP, SMALL_LEGS[:2]).splitlines()
    assert table[0] == (
        f"| leg | direct | plain mitmdump | mitmdump -s | {S3_MULTI_WORKERS.name} | rclone union "
        "| mitmdump -s / plain mitmdump | mitmdump -s / rclone union | mitmdump -s / direct |"
    )
    # ratios per run: plain 0.8 and 0.9, rclone 2.0 and 1.8, direct 0.16 and 0.144
    assert table[2] == (
        "| GET 1 KiB, primary hit (req/s) | 5,000 | 900 | 760 | 410 | 400 | 0.85 | 1.90 | 0.15 |"
    )
    # fallback: plain and direct are compared on their primary-hit figures of the same run
    assert table[3] == (
        "| GET 1 KiB, fallback hit (req/s) * | - | - | 450 | - | 250 | 0.50 | 1.80 | 0.09 |"
    )


def test_a_leg_with_failed_requests_is_marked():
    samples = _samples()
    samples[("t", SMALL_LEGS[1].name, RCLONE.name)][0].result.fail("status 503")
    row = throughput_table(Figures(samples, SMALL_LEGS), SETUP, SMALL_LEGS[1:2]).splitlines()[2]
    assert row.startswith("| GET 1 KiB, fallback hit (req/s) * | - | - | 450 | - | 250 ! |")


def test_rss_table_keeps_each_process_peak_per_column():
    samples = _samples()
    big = large_legs(256)[0]
    samples[("t", big.name, S3_MULTI.name)] = [_measured(1, {"s3-multi (t)": 95.0})]
    table = rss_table(samples, [*SMALL_LEGS, big]).splitlines()
    assert table[0] == "| process: peak RSS (MB) | small legs | 256 MiB legs |"
    assert "| s3-multi (t) | 80 | 95 |" in table
    assert "| weed primary | 200 | - |" in table


def test_targets_name_what_is_met_and_what_is_not():
    case = TripCase("GET", "GET", "k", frozenset({200}), (1, 0))
    trips = [Trip(case, 200, (1, 0), 1, True)]
    lines = targets(Figures(_samples(), SMALL_LEGS), SETUP, SMALL_LEGS, trips)
    assert "✓ GET 1 KiB, primary hit: mitmdump -s / plain mitmdump: 0.85 (target >= 0.85)" in lines
    assert "✗ GET 1 KiB, fallback hit: mitmdump -s / plain mitmdump: 0.50 (target >= 0.7)" in lines
    assert "✗ PUT 1 KiB: mitmdump -s / plain mitmdump: - (target >= 0.8)" in lines
    # CPU per request, the command in one process against plain mitmdump: none measured here
    cpu = f"GET 1 KiB, primary hit: CPU per request, {ONE_WORKER.name} / plain mitmdump"
    assert f"✗ {cpu}: - (target <= 1)" in lines
    assert lines[-1] == "✓ backend round trips as expected"


def test_the_command_s_cpu_per_small_get_is_checked_against_plain_mitmdump_s_per_run():
    get = SMALL_LEGS[0]

    def cpu(seconds: float) -> Measured:  # 1,000 requests in each run
        return Measured(LoadResult(counted=1000, seconds=2.0), "x", {}, cpu_seconds=seconds)

    samples = {
        ("t", get.name, ONE_WORKER.name): [cpu(0.9), cpu(1.3)],
        ("t", get.name, PLAIN.name): [cpu(1.0), cpu(1.2)],
    }
    lines = targets(Figures(samples, SMALL_LEGS), SETUP, SMALL_LEGS, [])
    # per run 0.9 / 1.0 and 1.3 / 1.2: the median 0.99, met
    cpu_line = f"GET 1 KiB, primary hit: CPU per request, {ONE_WORKER.name} / plain mitmdump"
    assert f"✓ {cpu_line}: 0.99 (target <= 1)" in lines
    samples[("t", get.name, ONE_WORKER.name)] = [cpu(1.1), cpu(1.3)]
    lines = targets(Figures(samples, SMALL_LEGS), SETUP, SMALL_LEGS, [])
    assert f"✗ {cpu_line}: 1.09 (target <= 1)" in lines


def test_peer_targets_compare_the_workers_with_the_peer_and_check_one_workers_memory():
    lines = peer_targets(Figures(_samples(), SMALL_LEGS), SETUP, RCLONE, SMALL_LEGS)
    # per run 440/400 and 380/400; the fallback leg has no workers' figures
    ours = f"{S3_MULTI_WORKERS.name} / rclone union"
    assert f"✓ GET 1 KiB, primary hit: {ours}: 1.02 (target >= 1)" in lines
    assert f"✗ GET 1 KiB, fallback hit: {ours}: - (target >= 0.8)" in lines
    assert f"✗ PUT 1 KiB: {ours}: - (target >= 1)" in lines
    # the workers' CPU per merged listing page: 0.5 s over 2 s at 440/s is 568 µs
    listing = next(leg for leg in SMALL_LEGS if leg.listed)
    samples = _samples()
    samples[("t", listing.name, S3_MULTI_WORKERS.name)] = [_measured(440, {})]
    lines = peer_targets(Figures(samples, SMALL_LEGS), SETUP, RCLONE, SMALL_LEGS)
    what = f"{listing.label}: CPU per request, {S3_MULTI_WORKERS.name} (µs)"
    assert f"✓ {what}: 568.18 (target <= 1500)" in lines
    memory = f"peak RSS of one worker, {S3_MULTI_WORKERS.name}, every leg (MB)"
    assert lines[-1] == f"✗ {memory}: 160.00 (target <= 150)"


def _transfer(mb_per_second: float, primary_cpu: float = 0.0, proxy_cpu: float = 0.5) -> Measured:
    result = LoadResult(counted=1, seconds=1.0, nbytes=int(mb_per_second * 1e6))
    cpu = {"s3-multi (SeaweedFS)": proxy_cpu, "weed primary": primary_cpu}
    return Measured(result, "s3-multi (SeaweedFS)", {}, proxy_cpu, cpu_by_service=cpu)


def test_transfers_combined_add_up_counts_times_and_cpu_and_keep_the_peaks():
    first, second = _transfer(400, 0.4), _transfer(200, 0.2)
    second.result.fail("status 500")
    second.peak_rss_mb["s3-multi (SeaweedFS)"] = 90.0
    both = combined([first, second])
    assert (both.result.counted, both.result.seconds, both.result.nbytes) == (2, 2.0, 600e6)
    assert both.result.mb_per_second == 300  # bytes over time, not a mean of rates
    assert both.result.errors == ["status 500"] and both.result.error_count == 1
    assert both.cpu_seconds == 1.0 and both.cpu_by_service["weed primary"] == pytest.approx(0.6)
    assert both.peak_rss_mb == {"s3-multi (SeaweedFS)": 90.0}


def test_copy_on_read_is_the_clients_transfer_time_over_the_same_read_without_copy():
    nginx, seaweed = SETUPS
    legs = large_legs(256)
    plain, copied = (leg for leg in legs if leg.name in ("get-256-fallback", "get-256-copy"))
    assert [leg.name for leg in legs if leg.runs_on(COPYING)] == [copied.name]
    assert not copied.runs_on(S3_MULTI) and nginx.runs(copied) and seaweed.runs(copied)
    samples = {
        (seaweed.name, plain.name, S3_MULTI.name): [_transfer(400), _transfer(500)],
        (seaweed.name, copied.name, COPYING.name): [
            _transfer(380, 0.4, 1.012),
            _transfer(400, 0.2, 1.268),
        ],
    }
    figures = Figures(samples, [*SMALL_LEGS, *legs])
    # per run 400 / 380 = 1.05 and 500 / 400 = 1.25: the median 1.15
    # the CPU line: medians per transfer, a process that used under 0.01 s left out
    # the copy's own CPU: (1.012 - 0.5) and (1.268 - 0.5) s over 256 MiB, 2 and 3 ms per MiB
    assert copy_on_read(figures, seaweed, legs) == [
        "✓ GET 256 MiB, fallback hit, copied on read: the client's transfer time, "
        "mitmdump -s, copy on read / mitmdump -s: 1.15 (target <= 1.2)",
        "  CPU seconds per transfer while the client read, with copy: "
        "s3-multi (SeaweedFS) 1.14, weed primary 0.30; without: s3-multi (SeaweedFS) 0.50",
        "  the copy's own CPU in the proxy: 2.50 ms per MiB",
    ]
    samples[(seaweed.name, copied.name, COPYING.name)] = [_transfer(300)]
    assert copy_on_read(figures, seaweed, legs)[0].startswith("✗ ")
    # on nginx (the fake primary takes the copies) the target is 1.15
    samples[(nginx.name, plain.name, S3_MULTI.name)] = [_transfer(400)]
    samples[(nginx.name, copied.name, COPYING.name)] = [_transfer(350)]
    assert copy_on_read(figures, nginx, legs)[0].endswith(": 1.14 (target <= 1.15)")
    header, _, *rows = throughput_table(figures, seaweed, legs).splitlines()
    columns = header.strip("| ").split(" | ")
    assert columns.index(COPYING.name) == len(seaweed.ways)  # a column, in no ratio
    assert not any(COPYING.name in c for c in columns[len(seaweed.ways) + 1 :])
    row = next(r for r in rows if "copied on read" in r).strip("| ").split(" | ")
    assert row[columns.index(COPYING.name)] == "300"
    assert set(row[1:]) == {"-", "300"}
    small = throughput_table(figures, seaweed, SMALL_LEGS).splitlines()
    assert "copy on read" not in small[0]


def test_a_copied_leg_is_checked_on_its_own_target_alone():
    legs = [*SMALL_LEGS, *large_legs(64)]
    copied = next(leg for leg in legs if leg.copies)
    samples = {(SETUPS[1].name, copied.name, COPYING.name): [_transfer(100)]}
    text = report(parse_args(["--quick"]), [], SETUPS, samples, legs, [], [])
    checks = [line for line in text.splitlines() if line.startswith(("✓", "✗"))]
    assert [line for line in checks if copied.label in line] == [
        f"✗ {copied.label}: the client's transfer time, {COPYING.name} / mitmdump -s: - "
        "(target <= 1.15)",  # nginx, its fake primary taking the copies
        f"✗ {copied.label}: the client's transfer time, {COPYING.name} / mitmdump -s: - "
        "(target <= 1.2)",
    ]
    assert "copy on read (SeaweedFS backends):" in text


def test_markdown_table():
    assert markdown(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_legs_compare_on_legs_that_exist():
    legs = [*SMALL_LEGS, *large_legs(64)]
    names = {leg.name for leg in legs}
    assert len(names) == len(legs)
    assert all(leg.stand_in in names for leg in legs if leg.stand_in)
    put = next(leg for leg in legs if leg.name == "put")
    assert put.key_for(S3_MULTI) == "small-put-mitmdump--s"
    assert SMALL_LEGS[0].key_for(S3_MULTI) == "small-hit"


def test_settings():
    quick = parse_args(["--quick"])
    assert (quick.runs, quick.seconds, quick.sizes_mib) == (1, 1, (64,))
    full = parse_args(["--size-mib", "256", "1024", "256"])
    assert (full.runs, full.sizes_mib, full.connections) == (3, (256, 1024), 8)
    with pytest.raises(SystemExit):
        parse_args(["--size-mib", "0"])
