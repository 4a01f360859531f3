"""What `s3-multi check` prints (`addon.check.output`): a difference's line for people and its
JSON object, the summary per bucket and backend, and the JSON summary."""

from __future__ import annotations

import io
import json

from addon.check.differences import COPY, NOTHING, REPLICA_MISSING, TOMBSTONED, Difference
from addon.check.output import Human, JsonLines, json_summary, line, progress, summary
from addon.check.run import Report, Tally

MISSING = Difference(REPLICA_MISSING, "a/b.txt", "dr", 2048, '"e1"', 'the primary has "e1"', COPY)


def report() -> Report:
    found = Report(started=0.0, buckets=2, keys=10_000)
    found.found[("photos", "dr", REPLICA_MISSING)] = Tally(COPY, 3, 3 * 1024)
    found.found[("photos", "warm", TOMBSTONED)] = Tally(NOTHING, 1, 10)
    found.left = 3
    return found


def test_a_difference_for_people_names_where_what_and_what_was_done():
    assert line("photos", MISSING, "") == (
        'photos/a/b.txt: replica-missing on dr: the primary has "e1"'
    )
    assert line("photos", MISSING, "copied").endswith(" -> copied")
    evil = Difference(TOMBSTONED, "x\ny", "warm", 1, "", "", NOTHING)
    assert "\n" not in line("photos", evil, "")


def test_a_difference_as_json_names_bucket_key_kind_and_backends():
    out, err = io.StringIO(), io.StringIO()
    JsonLines(out, progress(err, tty=False), "main").difference("photos", MISSING, "", True)
    record = json.loads(out.getvalue())
    assert record["bucket"] == "photos" and record["key"] == "a/b.txt"
    assert record["kind"] == REPLICA_MISSING and record["backend"] == "dr"
    assert record["primary"] == "main" and record["left"] is True and record["size"] == 2048


def test_people_get_each_difference_on_stdout_and_the_progress_on_stderr():
    out, err = io.StringIO(), io.StringIO()
    Human(out, progress(err, tty=False)).difference("photos", MISSING, "", True)
    assert out.getvalue().startswith("photos/a/b.txt: replica-missing") and err.getvalue() == ""


def test_the_summary_counts_and_sizes_each_kind_per_bucket_and_backend():
    lines = summary(report(), {("dr", "listings"): 12, ("main", "HEADs"): 1}, now=2.0)
    assert lines[0] == "bucket photos:"
    assert lines[1].split() == [
        "dr", REPLICA_MISSING, "3", "keys", "3.0", "KiB", "--repair", "copies", "the",
        "primary's", "object",
    ]  # fmt: skip
    assert lines[2].split()[:6] == ["warm", TOMBSTONED, "1", "key", "10", "B"]
    assert lines[2].endswith("hidden from reads (the proxy never writes a fallback)")
    assert lines[3] == (
        "2 buckets, 10,000 keys compared in 2.0 s (5,000 keys/s): 4 differences, "
        "3 the config says should not be"
    )
    assert lines[4] == "requests: dr 12 listings; main 1 HEAD"


def test_the_json_summary_comes_last_with_the_exit_status():
    text = json_summary(report(), {("dr", "listings"): 12}, now=2.0, status=1)
    summary = json.loads(text)["summary"]
    assert summary["exit"] == 1 and summary["keys"] == 10_000 and summary["left"] == 3
    assert summary["found"][0] == {
        "bucket": "photos", "backend": "dr", "kind": REPLICA_MISSING, "count": 3, "bytes": 3072
    }  # fmt: skip
    assert summary["requests"] == {"dr": {"listings": 12}}
