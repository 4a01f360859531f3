"""Backends that hang, stall, lie or send garbage, and clients that stall: the client gets an S3
answer in bounded time (or, once an answer streams, a broken transfer, never a complete-looking
one), a sick fallback is skipped like one that lacks the key, nothing is stored half-written,
and every request leaves a log line naming the backend and what went wrong.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support import faulty_clients
from tests.support.direct import put_direct
from tests.support.faulty_backends import (
    MIB,
    AnswerBeforeBody,
    Blackhole,
    Garbage,
    Hang,
    HugeBucketList,
    HugeNotFound,
    InvalidStatus,
    Reset,
    ShortBody,
    StallAfterHeaders,
)
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET

pytestmark = pytest.mark.e2e
TIMEOUTS = {"connectTimeout": 1, "responseTimeout": 2, "idleTimeout": 2}
BOUND = 12  # seconds: every answer here comes well within this (mitmproxy alone: 600)


def config(path: Path, servers, **settings) -> Path:
    entries = [
        {
            "name": s.name,
            "access": s.access,
            "secret": s.secret,
            "endpoint": s.endpoint,
            "usePathStyle": True,
            **TIMEOUTS,
        }
        for s in servers
    ]
    path.write_text(json.dumps({"backends": entries, **settings}))
    return path


def timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except ClientError as e:
        return e.response, time.monotonic() - started


def error_of(response) -> tuple[int, str, str]:
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response.get("Error", {}).get("Code", ""),
        response.get("Error", {}).get("Message", ""),
    )


SICK = [
    pytest.param(lambda: Blackhole(name="sick"), "unreachable", id="blackholed-connect"),
    pytest.param(lambda: Hang(name="sick"), "timed out: no answer within 2s", id="hang"),
    pytest.param(lambda: Garbage(name="sick"), "broken", id="garbage"),
    pytest.param(lambda: InvalidStatus(name="sick"), "broken: invalid status 99999", id="status"),
    pytest.param(lambda: Reset(name="sick"), "broken", id="reset"),
    pytest.param(
        lambda: HugeNotFound(name="sick"), "broken: an error body over 65536 bytes", id="huge-404"
    ),
]


@pytest.mark.parametrize(("make", "note"), SICK)
def test_a_sick_fallback_is_skipped(backends, run_proxy, tmp_path, bucket, make, note):
    primary, _, tertiary = backends
    with make() as sick:
        proxy = run_proxy(config(tmp_path / "c.json", [primary, sick, tertiary]))
        primary.client().create_bucket(Bucket=bucket)
        put_direct(tertiary, bucket, "k", b"behind a sick backend")
        client = proxy.client()
        got, seconds = timed(lambda: client.get_object(Bucket=bucket, Key="k")["Body"].read())
        assert got == b"behind a sick backend" and seconds < BOUND
        missing, seconds = timed(lambda: client.get_object(Bucket=bucket, Key="nowhere"))
        assert error_of(missing)[:2] == (404, "NoSuchKey") and seconds < BOUND
    log = proxy.log()
    assert f"GetObject /{bucket}/k via [primary 404" in log
    assert f"sick {note}" in log and "answered by tertiary" in log


@pytest.mark.parametrize(("make", "note"), SICK)
def test_a_sick_primary_is_an_s3_503_naming_it(backends, run_proxy, tmp_path, bucket, make, note):
    with make() as sick:
        proxy = run_proxy(config(tmp_path / "c.json", [sick, backends[1]]))
        client = proxy.client()
        calls = [lambda: client.get_object(Bucket=bucket, Key="k")]
        if not isinstance(sick, HugeNotFound):  # to a write, a 404 of any size is the answer
            calls.append(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"x"))
        for call in calls:
            answer, seconds = timed(call)
            status, code, message = error_of(answer)
            assert (status, code) == (503, "ServiceUnavailable") and seconds < BOUND
            assert message.startswith("Backend sick ")
    assert f"[sick {note}" in proxy.log()


def test_a_body_that_stalls_breaks_the_clients_transfer(backends, run_proxy, tmp_path, bucket):
    """Headers and part of a large body are on their way: the client must see a cut, not a
    complete-looking 200."""
    with StallAfterHeaders(name="sick", length=4 * MIB, sent=MIB) as sick:
        proxy = run_proxy(config(tmp_path / "c.json", [sick]))
        started = time.monotonic()
        answer = proxy.client().get_object(Bucket=bucket, Key="big")
        with pytest.raises(Exception) as cut:  # urllib3's IncompleteRead / ProtocolError
            answer["Body"].read()
        seconds = time.monotonic() - started
    assert seconds < BOUND
    assert "IncompleteRead" in repr(cut.value) or "Connection" in repr(cut.value)
    assert f"GetObject /{bucket}/big via [sick 200" in proxy.log()
    assert "failed: the answer's body stalled" in proxy.log()


def test_a_short_body_read_whole_is_a_503(backends, run_proxy, tmp_path, bucket):
    with ShortBody(name="sick", length=1000, sent=100) as sick:
        proxy = run_proxy(config(tmp_path / "c.json", [sick]))
        answer, seconds = timed(lambda: proxy.client().get_object(Bucket=bucket, Key="k"))
    assert error_of(answer)[:2] == (503, "ServiceUnavailable") and seconds < BOUND


def test_a_huge_404_body_does_not_grow_the_proxy(backends, run_proxy, tmp_path, bucket):
    with HugeNotFound(name="sick") as sick:
        proxy = run_proxy(config(tmp_path / "c.json", [backends[0], sick]))
        backends[0].client().create_bucket(Bucket=bucket)
        before = proxy.rss_mb()
        for _ in range(3):
            missing, _ = timed(lambda: proxy.client().get_object(Bucket=bucket, Key="nowhere"))
            assert error_of(missing)[:2] == (404, "NoSuchKey")
        assert proxy.rss_mb() - before < 40


def test_a_huge_bucket_list_is_skipped_in_bounded_memory(backends, run_proxy, tmp_path, bucket):
    with HugeBucketList(name="sick") as sick:
        proxy = run_proxy(config(tmp_path / "c.json", [backends[0], sick]))
        backends[0].client().create_bucket(Bucket=bucket)
        before = proxy.rss_mb()
        names = [b["Name"] for b in proxy.client().list_buckets()["Buckets"]]
        grown = proxy.rss_mb() - before
    assert bucket in names and grown < 60
    assert "sick unreachable" in proxy.log()


def test_a_stalled_upload_gets_request_timeout_and_stores_nothing(
    backends, run_proxy, tmp_path, bucket
):
    primary = backends[0]
    proxy = run_proxy(config(tmp_path / "c.json", [primary], clientTimeout=1))
    primary.client().create_bucket(Bucket=bucket)
    outcome = faulty_clients.stalled_upload(
        proxy.port, bucket, "stalled.bin", ROOT_ACCESS, ROOT_SECRET, timeout=BOUND
    )
    assert outcome.status == 400 and b"<Code>RequestTimeout</Code>" in outcome.body_start
    assert outcome.seconds < BOUND
    assert "Contents" not in primary.client().list_objects_v2(Bucket=bucket)
    assert f"PutObject /{bucket}/stalled.bin via [primary refused: RequestTimeout" in proxy.log()


@pytest.mark.parametrize("size", [100_000, 4 * MIB], ids=["read-whole", "streamed"])
def test_a_backend_that_answers_an_upload_before_its_body_and_closes_is_heard(
    backends, run_proxy, tmp_path, bucket, size
):
    """Its answer came whole before its close: the client gets that answer, not a 503 of ours."""
    with AnswerBeforeBody(name="early") as early:
        proxy = run_proxy(config(tmp_path / "c.json", [early]))
        client = proxy.client()
        answer, seconds = timed(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"u" * size))
        assert error_of(answer) == (500, "InternalError", "The backend's own message.")
        assert seconds < BOUND
        puts = [r for r in early.requests if r.method == "PUT"]  # botocore retries a 500 once
        assert puts and not any(put.complete for put in puts)  # answered before the body
    assert f"PutObject /{bucket}/k via [early 500" in proxy.log()


def test_5xx_from_a_backend_is_passed_on_unless_configured(backends, run_proxy, tmp_path, bucket):
    tertiary = backends[2]
    put_direct(tertiary, bucket, "k", b"from the tertiary")
    with InvalidStatus(
        name="sick", status="503 Slow Down", body=b"<Error><Code>SlowDown</Code></Error>"
    ) as sick:
        passed = run_proxy(config(tmp_path / "a.json", [sick, tertiary]))
        answer, _ = timed(lambda: passed.client().get_object(Bucket=bucket, Key="k"))
        assert error_of(answer)[:2] == (503, "SlowDown")
        tried = run_proxy(config(tmp_path / "b.json", [sick, tertiary], fallbackOn5xx=True))
        got = tried.client().get_object(Bucket=bucket, Key="k")["Body"].read()
    assert got == b"from the tertiary"


def test_a_newline_in_a_path_cannot_forge_a_log_line(proxy):
    path = "/b/k" + urllib.parse.quote("\nGetObject /b/forged via [primary 200 1ms] answered by x")
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=BOUND)
    connection.request("GET", path)
    assert connection.getresponse().status == 403
    connection.close()
    lines = proxy.log().splitlines()
    assert not any(line.startswith("GetObject /b/forged") for line in lines)
    assert any("refused: AccessDenied" in line and "\\u000a" in line for line in lines)
