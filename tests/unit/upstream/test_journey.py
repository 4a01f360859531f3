"""addon.journey, the decision core: fed what each backend did, it says what happens next.

No network and no mitmproxy here: a journey is driven with statuses and bodies, as h11 is
driven with bytes.
"""

from __future__ import annotations

import pytest

from addon.config.settings import Backend
from addon.s3.operations import TABLE, Route, Scope, classify, parse_path
from addon.upstream.health import Outlook
from addon.upstream.journey import (
    Answer,
    AskNext,
    InspectBody,
    Journey,
    Replace,
    error_code,
    printable,
)

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
UP = Outlook()  # every backend up, readFailover on
HOT, WARM, COLD = (
    Backend(i, name, f"AK{i}", f"secret-{i}", f"http://10.0.0.{i}:9000")
    for i, name in enumerate(["hot", "warm", "cold"])
)


def s3_error(code: str, xmlns: bool = False, pretty: bool = False) -> bytes:
    attr = f' xmlns="{S3_NS}"' if xmlns else ""
    sep = "\n  " if pretty else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error{attr}>{sep}<Code>{code}</Code>{sep}'
        f"<Message>Some backend's own wording.</Message>{sep}<RequestId>1</RequestId></Error>"
    ).encode()


def journey(
    method: str = "GET",
    path: str = "/bkt/k",
    query: tuple[str, ...] = (),
    on_5xx: bool = False,
    outlook: Outlook = UP,
) -> Journey:
    target = parse_path(path)
    operation = classify(method, target, list(query))
    assert operation is not None
    backends = (HOT, WARM, COLD) if operation.route is Route.FALLBACK else (HOT,)
    trip = Journey(operation, method, target, backends, on_5xx, clock=lambda: 0.0, outlook=outlook)
    assert trip.begin() is HOT
    return trip


def miss(trip: Journey, code: str = "NoSuchKey"):
    """A 404 with this code from the current backend: what the journey decides."""
    verdict = trip.headers(404)
    if trip.method == "HEAD":
        return verdict
    assert verdict == InspectBody()
    return trip.body(s3_error(code))


# --- a read over the backends --------------------------------------------------------------------


def test_a_hit_on_the_primary_is_its_answer():
    trip = journey()
    assert trip.headers(200) == Answer()
    assert trip.summary("/bkt/k") == "GetObject /bkt/k via [hot 200 0ms] answered by hot"


def test_a_404_is_read_then_the_next_backend_asked():
    trip = journey()
    assert miss(trip) == AskNext(WARM)
    assert trip.headers(200) == Answer()
    assert trip.summary("/bkt/k") == (
        "GetObject /bkt/k via [hot 404 0ms, warm 200 0ms] answered by warm"
    )


def test_a_head_404_needs_no_body():
    trip = journey("HEAD")
    assert trip.headers(404) == AskNext(WARM)
    assert trip.headers(404) == AskNext(COLD)
    assert trip.headers(404) == Answer()  # the last backend's own 404: a HEAD says no more
    assert trip.answered_by == "cold (not found anywhere)"


@pytest.mark.parametrize("code", ["NoSuchKey", "NoSuchBucket"])
@pytest.mark.parametrize("xmlns", [False, True], ids=["plain", "xmlns"])
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "indented"])
def test_no_such_key_or_bucket_sends_a_sub_resource_read_on(code, xmlns, pretty):
    trip = journey(query=("tagging",))
    assert trip.headers(404) == InspectBody()
    assert trip.body(s3_error(code, xmlns, pretty)) == AskNext(WARM)


@pytest.mark.parametrize(
    "code",
    [
        "NoSuchTagSet",
        "NoSuchBucketPolicy",
        "NoSuchCORSConfiguration",
        "NoSuchLifecycleConfiguration",
        "NoSuchUpload",
        "NoSuchVersion",
        "NoSuchKeyX",
        "nosuchkey",
    ],
)
def test_a_404_about_a_sub_resource_or_another_code_is_the_answer(code):
    """The object exists on this backend: another backend's tag set would be another
    object's."""
    trip = journey(query=("tagging",))
    assert miss(trip, code) == Answer()
    assert trip.answered_by == "hot"


@pytest.mark.parametrize(
    "body",
    [b"", b"Not Found", b"<html><body><h1>404 Not Found</h1></body></html>", b"{}"],
    ids=["empty", "text", "html", "json"],
)
def test_a_sub_resource_404_without_an_s3_code_is_the_answer(body):
    trip = journey(query=("acl",))
    trip.headers(404)
    assert trip.body(body) == Answer()


@pytest.mark.parametrize("body", [b"", b"<html>404</html>", s3_error("Whatever")])
def test_a_404_to_a_plain_read_is_a_miss_whatever_its_body(body):
    trip = journey()
    trip.headers(404)
    assert trip.body(body) == AskNext(WARM)


def test_the_message_text_never_decides():
    trip = journey(query=("tagging",))
    trip.headers(404)
    assert trip.body(b"<Error><Code>NoSuchKey</Code><Message>Objekt fehlt</Message></Error>") == (
        AskNext(WARM)
    )


@pytest.mark.parametrize("status", [403, 500, 503, 200, 301, 400])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_other_statuses_are_the_answer(method, status):
    assert journey(method).headers(status) == Answer()


def test_a_delete_marker_is_the_answer_not_a_miss():
    """S3's own tombstone on a versioned bucket: the key was deleted there."""
    trip = journey()
    assert trip.headers(404, delete_marker=True) == Answer()
    assert [a.backend for a in trip.attempts] == [HOT]


@pytest.mark.parametrize(
    ("method", "path"), [("DELETE", "/bkt/k"), ("PUT", "/bkt/k"), ("GET", "/bkt/k?uploadId=1")]
)
def test_writes_and_primary_only_reads_never_fall_back(method, path):
    raw, _, query = path.partition("?")
    trip = journey(method, raw, tuple(q.split("=")[0] for q in query.split("&") if q))
    assert trip.headers(404) == Answer()


def test_every_row_of_the_table_that_is_a_read_falls_back():
    reads = {op.name for op in TABLE.values() if op.route is Route.FALLBACK}
    assert {"GetObject", "HeadObject", "GetObjectTagging", "GetBucketAcl"} <= reads
    assert TABLE[("GET", Scope.SERVICE, "")].route is Route.ALL


# --- not found anywhere: the most specific answer ------------------------------------------------


def test_not_found_anywhere_is_the_last_backends_answer_when_it_says_most():
    trip = journey()
    assert miss(trip, "NoSuchBucket") == AskNext(WARM)
    assert miss(trip, "NoSuchBucket") == AskNext(COLD)
    assert miss(trip, "NoSuchKey") == Answer()
    assert trip.answered_by == "cold (not found anywhere)"


def test_no_such_key_wins_when_any_backend_has_the_bucket():
    """minio-go reads NoSuchBucket as "the bucket does not exist": S3 would say NoSuchKey."""
    trip = journey()
    assert miss(trip, "NoSuchKey") == AskNext(WARM)
    assert miss(trip, "NoSuchBucket") == AskNext(COLD)
    verdict = miss(trip, "NoSuchBucket")
    assert isinstance(verdict, Replace)
    assert (verdict.error.code, verdict.error.extra) == ("NoSuchKey", {"Key": "k"})


def test_no_such_bucket_only_when_no_backend_has_it():
    trip = journey()
    for _ in range(2):
        miss(trip, "NoSuchBucket")
    assert miss(trip, "NoSuchBucket") == Answer()


def test_a_bucket_read_not_found_anywhere_is_no_such_bucket():
    trip = journey("GET", "/bkt")
    miss(trip, "NoSuchBucket")
    miss(trip, "NoSuchBucket")
    assert miss(trip, "NoSuchBucket") == Answer()


# --- sick backends -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, outlook", [("PUT", Outlook()), ("GET", Outlook(read_failover=False))]
)
def test_an_unreachable_primary_is_a_503_naming_it(method, outlook):
    """For a write, and for a read when readFailover is off (test_failover: when it is on)."""
    trip = journey(method, outlook=outlook)
    verdict = trip.unreachable("Connect call failed")
    assert isinstance(verdict, Replace)
    assert verdict.error.code == "ServiceUnavailable"
    assert verdict.error.message == "Backend hot is unreachable."
    assert trip.answered_by == "proxy"
    assert "hot unreachable" in trip.summary("/bkt/k")


def test_an_unreachable_fallback_is_skipped():
    trip = journey()
    miss(trip)
    assert trip.unreachable("refused") == AskNext(COLD)
    assert trip.headers(200) == Answer()
    assert "warm unreachable" in trip.summary("/bkt/k") and trip.answered_by == "cold"


def test_an_unreachable_last_fallback_leaves_the_not_found_of_the_others():
    trip = journey()
    miss(trip)
    miss(trip)
    verdict = trip.unreachable("refused")
    assert isinstance(verdict, Replace) and verdict.error.code == "NoSuchKey"


def test_an_invalid_status_is_a_broken_backend():
    trip = journey()
    miss(trip)
    assert trip.headers(99999) == AskNext(COLD)
    assert "warm broken: invalid status 99999" in trip.summary("/bkt/k")


def test_a_broken_primary_is_a_503_for_a_write():
    trip = journey("PUT")
    verdict = trip.broken("garbage")
    assert isinstance(verdict, Replace)
    assert verdict.error.message == "Backend hot sent an invalid answer."


def test_a_refusal_on_the_way_says_so():
    trip = journey("PUT")
    trip.refused("SignatureDoesNotMatch")
    assert trip.summary("/bkt/k") == (
        "PutObject /bkt/k via [hot refused: SignatureDoesNotMatch 0ms] answered by proxy"
    )


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_is_the_answer_unless_configured_to_ask_the_next(status):
    assert journey().headers(status) == Answer()
    trip = journey(on_5xx=True)
    assert trip.headers(status) == InspectBody()
    assert trip.body(b"<Error><Code>SlowDown</Code></Error>") == AskNext(WARM)
    assert trip.headers(200) == Answer()
    assert trip.answered_by == "warm"


def test_a_5xx_from_the_last_backend_is_its_answer():
    trip = journey(on_5xx=True)
    miss(trip)
    miss(trip)
    assert trip.headers(503) == Answer()


def test_a_write_answered_5xx_never_goes_elsewhere():
    assert journey("PUT", on_5xx=True).headers(503) == Answer()


def test_a_timed_out_fallback_is_skipped_and_a_timed_out_primary_is_a_503():
    trip = journey()
    miss(trip)
    assert trip.timed_out("no answer within 30s") == AskNext(COLD)
    assert "warm timed out: no answer within 30s" in trip.summary("/bkt/k")
    verdict = journey(outlook=Outlook(read_failover=False)).timed_out("no answer within 30s")
    assert isinstance(verdict, Replace) and verdict.error.status == 503
    assert verdict.error.message == "Backend hot did not answer in time."


# --- helpers -------------------------------------------------------------------------------------


def test_error_code_reads_the_code_element():
    assert error_code(s3_error("NoSuchBucket", xmlns=True, pretty=True)) == "NoSuchBucket"
    assert error_code(b"<Error><Code>\n   NoSuchKey\n </Code></Error>") == "NoSuchKey"
    assert error_code(b"<html/>") is None


def test_printable_keeps_one_log_line_one_line():
    assert printable("/b/k\nGetObject /b/forged via [hot 200]") == (
        "/b/k\\u000aGetObject /b/forged via [hot 200]"
    )
    assert printable("/b/été\u2028x\x7f") == "/b/été\\u2028x\\u007f"
    assert printable("a\rb") == "a\\u000db"
