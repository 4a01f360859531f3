"""A form's policy document: the documents S3 reads and those it refuses, each condition held to
a form as AWS documents it, and the document a backend is given."""

from __future__ import annotations

import base64
import calendar
import json

import pytest

from addon.s3 import post_policy
from addon.s3.errors import S3Error
from tests.support.post_forms import policy_of, presigned_post

EXPIRATION = "2030-01-01T00:00:00.000Z"
NOW = calendar.timegm((2029, 6, 1, 0, 0, 0))
BUCKET = "photos"


def encoded(document: object) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    return base64.b64encode(text.encode()).decode()


def policy(*conditions: object, expiration: str = EXPIRATION) -> post_policy.Policy:
    return post_policy.parse(encoded({"expiration": expiration, "conditions": list(conditions)}))


def test_botocores_policy_is_read():
    form = presigned_post(
        "http://127.0.0.1:1",
        BUCKET,
        "user/eric/${filename}",
        fields={"acl": "public-read"},
        conditions=[{"acl": "public-read"}, ["content-length-range", 10, 1000]],
    )
    parsed = post_policy.parse(form["fields"]["policy"])
    assert parsed.size_range == (10, 1000)
    names = [c.name.lower() for c in parsed.conditions if c.name]
    assert names == ["acl", "bucket", "key", "x-amz-algorithm", "x-amz-credential", "x-amz-date"]
    assert parsed.document == policy_of(form["fields"])


def test_the_expiration_is_iso_8601_utc_with_or_without_fractions():
    assert policy(expiration="2030-01-01T00:00:00Z").expiration == calendar.timegm(
        (2030, 1, 1, 0, 0, 0)
    )
    assert policy(expiration="2030-01-01T00:00:01.5Z").expiration == calendar.timegm(
        (2030, 1, 1, 0, 0, 1)
    )


EXPIRY = "Invalid Policy: Invalid 'expiration' value: "
ONE = "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one property"


@pytest.mark.parametrize(
    "document, message",
    [
        ("{policy}", "Invalid Policy: Invalid JSON."),
        ([], "Invalid Policy: Invalid JSON."),
        ({"conditions": []}, "Invalid Policy: Policy missing expiration."),
        ({"expiration": EXPIRATION}, "Invalid Policy: Policy missing conditions."),
        (
            {"EXPIRATION": EXPIRATION, "conditions": []},
            "Invalid Policy: Policy missing expiration.",
        ),
        (
            {"expiration": EXPIRATION, "CONDITIONS": []},
            "Invalid Policy: Policy missing conditions.",
        ),
        ({"expiration": "2030-01-01 00:00:00.123+00:00", "conditions": []}, EXPIRY),
        ({"expiration": "2030-01-01T00:00:00+00:00", "conditions": []}, EXPIRY),
        ({"expiration": "2030-02-30T00:00:00Z", "conditions": []}, EXPIRY),
        ({"expiration": 1893456000, "conditions": []}, EXPIRY),
        ({"expiration": EXPIRATION, "conditions": {}}, "Invalid Policy: The 'conditions'"),
        ({"expiration": EXPIRATION, "conditions": [{}]}, ONE),
        ({"expiration": EXPIRATION, "conditions": [{"acl": "a", "key": "k"}]}, ONE),
        ({"expiration": EXPIRATION, "conditions": [{"acl": 1}]}, "Invalid Policy: Invalid Simple"),
        ({"expiration": EXPIRATION, "conditions": ["bucket"]}, "Invalid Policy: Invalid Cond"),
        (
            {"expiration": EXPIRATION, "conditions": [["eq", "$key"]]},
            "Invalid Policy: Invalid Cond",
        ),
        ({"expiration": EXPIRATION, "conditions": [["ends-with", "$k", "x"]]}, "Invalid Policy"),
        ({"expiration": EXPIRATION, "conditions": [["eq", "$key", 5]]}, "Invalid Policy"),
        ({"expiration": EXPIRATION, "conditions": [["content-length-range", 0]]}, "Invalid Policy"),
        (
            {"expiration": EXPIRATION, "conditions": [["content-length-range", -1, 0]]},
            "Invalid Policy: Invalid content-length-range",
        ),
        ({"expiration": EXPIRATION, "conditions": [["content-length-range", 0, "x"]]}, "Invalid"),
        ({"expiration": EXPIRATION, "conditions": [["content-length-range", True, 5]]}, "Invalid"),
    ],
)
def test_documents_s3_cannot_read_are_invalid_policy_documents(document, message):
    with pytest.raises(S3Error) as refused:
        post_policy.parse(encoded(document))
    assert (refused.value.code, refused.value.status) == ("InvalidPolicyDocument", 400)
    assert refused.value.message.startswith(message)


def test_a_policy_that_is_not_base64_is_invalid_json():
    with pytest.raises(S3Error) as refused:
        post_policy.parse("not base64!")
    assert refused.value.message == "Invalid Policy: Invalid JSON."


def test_base64_split_over_lines_is_read():
    text = encoded({"expiration": EXPIRATION, "conditions": [{"acl": "private"}]})
    assert post_policy.parse("\n".join(text[i : i + 60] for i in range(0, len(text), 60)))


def failed(condition: str) -> str:
    return f"Invalid according to Policy: Policy Condition failed: {condition}"


def extra(name: str) -> str:
    return f"Invalid according to Policy: Extra input fields: {name}"


COVERED = [{"bucket": BUCKET}, ["starts-with", "$key", ""]]


@pytest.mark.parametrize(
    "conditions, fields, refused",
    [
        ([{"acl": "private"}], {"acl": "private"}, None),
        ([["eq", "$acl", "private"]], {"acl": "private"}, None),
        ([["EQ", "$ACL", "private"]], {"acl": "private"}, None),
        ([{"AcL": "private"}], {"acl": "private"}, None),
        ([{"acl": "x"}], {"acl": "private"}, failed('["eq", "$acl", "x"]')),
        ([{"acl": "x"}], {}, failed('["eq", "$acl", "x"]')),
        ([{"acl": ""}], {}, None),
        ([["eq", "acl", "private"]], {"acl": "private"}, failed('["eq", "acl", "private"]')),
        (
            [["eq", "$x-amz-meta-foo", ""]],
            {"x-amz-meta-foo": "barclamp"},
            failed('["eq", "$x-amz-meta-foo", ""]'),
        ),
        ([{"acl": "Private"}], {"acl": "private"}, failed('["eq", "$acl", "Private"]')),
        ([["starts-with", "$acl", "pri"]], {"acl": "private"}, None),
        ([["StArTs-WiTh", "$aCl", "pri"]], {"acl": "private"}, None),
        (
            [["starts-with", "$acl", "pub"]],
            {"acl": "private"},
            failed('["starts-with", "$acl", "pub"]'),
        ),
        ([["starts-with", "$acl", ""]], {}, None),
        (
            [["starts-with", "$Content-Type", "image/"]],
            {"content-type": "image/png, image/gif"},
            None,
        ),
        (
            [["starts-with", "$Content-Type", "image/"]],
            {"content-type": "image/png,text/html"},
            failed('["starts-with", "$Content-Type", "image/"]'),
        ),
        ([["content-length-range", 0, 1]], {}, None),  # the file's size: FileTail's to check
        ([], {"acl": "private"}, extra("acl")),
        ([], {"x-ignore-me": "1", "x-amz-signature": "s", "policy": "p"}, None),
    ],
)
def test_conditions_held_to_a_form(conditions, fields, refused):
    document = policy(*COVERED, *conditions)
    values = {"key": "k", **fields}
    if refused is None:
        post_policy.check(document, values, BUCKET, NOW)
        return
    with pytest.raises(S3Error) as error:
        post_policy.check(document, values, BUCKET, NOW)
    assert (error.value.code, error.value.status, error.value.message) == (
        "AccessDenied",
        403,
        refused,
    )


@pytest.mark.parametrize(
    "conditions, posted_to, message",
    [
        ([{"bucket": BUCKET}], BUCKET, None),
        ([{"BUCKET": BUCKET}], BUCKET, None),
        ([{"bucket": BUCKET}], "another", failed(f'["eq", "$bucket", "{BUCKET}"]')),
        ([], BUCKET, extra("bucket")),  # the bucket must be named, as every field
    ],
)
def test_the_bucket_is_the_one_the_form_is_posted_to(conditions, posted_to, message):
    document = policy(*conditions, ["starts-with", "$key", ""])
    fields = {"key": "k", "bucket": "a field cannot choose it"}
    if message is None:
        post_policy.check(document, fields, posted_to, NOW)
        return
    with pytest.raises(S3Error) as refused:
        post_policy.check(document, fields, posted_to, NOW)
    assert refused.value.message == message


def test_a_policy_is_good_until_its_expiration_and_not_after():
    document = policy(*COVERED, expiration="2030-01-01T00:00:00Z")
    deadline = calendar.timegm((2030, 1, 1, 0, 0, 0))
    post_policy.check(document, {"key": "k"}, BUCKET, deadline)
    with pytest.raises(S3Error) as refused:
        post_policy.check(document, {"key": "k"}, BUCKET, deadline + 1)
    assert (refused.value.code, refused.value.message) == (
        "AccessDenied",
        "Invalid according to Policy: Policy expired.",
    )


def test_several_ranges_all_hold():
    document = policy(["content-length-range", 0, 100], ["content-length-range", "10", "1000"])
    assert document.size_range == (10, 100)
    assert policy({"acl": "x"}).size_range is None


def test_the_backends_policy_names_its_signature_fields_and_keeps_the_rest():
    document = policy(
        {"bucket": BUCKET},
        ["starts-with", "$key", "user/"],
        {"X-Amz-Credential": "ROOT/20300101/us-east-1/s3/aws4_request"},
        ["eq", "$x-amz-date", "20300101T000000Z"],
        {"x-amz-security-token": "t"},
        ["content-length-range", 1, 9],
    )
    exact = {"x-amz-credential": "AK/20290601/eu-west-1/s3/aws4_request", "x-amz-date": "D"}
    rewritten = post_policy.rewritten(document, exact, frozenset({"x-amz-security-token"}))
    assert json.loads(base64.b64decode(rewritten)) == {
        "expiration": EXPIRATION,
        "conditions": [
            {"bucket": BUCKET},
            ["starts-with", "$key", "user/"],
            ["content-length-range", 1, 9],
            {"x-amz-credential": "AK/20290601/eu-west-1/s3/aws4_request"},
            {"x-amz-date": "D"},
        ],
    }
