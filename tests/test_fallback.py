"""addon.fallback (which 404 means "ask the next backend") and addon.errors (S3 XML errors)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from addon import fallback
from addon.errors import KNOWN, S3Error, new_request_id, render
from addon.fallback import error_code, is_not_found

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def s3_error(code: str, xmlns: bool = False, pretty: bool = False) -> bytes:
    attr = f' xmlns="{S3_NS}"' if xmlns else ""
    sep = "\n  " if pretty else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error{attr}>{sep}<Code>{code}</Code>{sep}'
        f"<Message>Some backend's own wording.</Message>{sep}<RequestId>1</RequestId></Error>"
    ).encode()


# --- is_not_found -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["NoSuchKey", "NoSuchBucket"])
@pytest.mark.parametrize("xmlns", [False, True], ids=["plain", "xmlns"])
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "indented"])
def test_404_no_such_key_or_bucket_is_not_found(code: str, xmlns: bool, pretty: bool) -> None:
    assert is_not_found("GET", 404, s3_error(code, xmlns, pretty))


def test_whitespace_inside_the_code_element_is_ignored() -> None:
    assert is_not_found("GET", 404, b"<Error><Code>\n   NoSuchKey\n </Code></Error>")


def test_message_text_is_not_what_decides() -> None:
    """A backend wording its message differently (or not at all) still falls back."""
    assert is_not_found("GET", 404, b"<Error><Code>NoSuchKey</Code></Error>")
    assert is_not_found(
        "GET", 404, b"<Error><Code>NoSuchKey</Code><Message>Objekt fehlt</Message></Error>"
    )


@pytest.mark.parametrize("method", ["HEAD", "head"])
def test_head_404_with_empty_body_is_not_found(method: str) -> None:
    assert is_not_found(method, 404, b"")


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
def test_404_about_a_sub_resource_or_other_code_is_not_a_miss(code: str) -> None:
    assert not is_not_found("GET", 404, s3_error(code))


@pytest.mark.parametrize("status", [403, 500, 503, 200, 301, 400])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_other_statuses_are_not_a_miss_even_with_no_such_key(method: str, status: int) -> None:
    assert not is_not_found(method, status, s3_error("NoSuchKey"))


@pytest.mark.parametrize(
    "body",
    [b"", b"Not Found", b"<html><body><h1>404 Not Found</h1></body></html>", b"{}"],
    ids=["empty", "text", "html", "json"],
)
def test_get_404_without_an_s3_code_is_not_a_miss(body: bytes) -> None:
    assert not is_not_found("GET", 404, body)


def test_error_code_reads_the_code_element() -> None:
    assert error_code(s3_error("NoSuchBucket", xmlns=True, pretty=True)) == "NoSuchBucket"
    assert error_code(b"<html/>") is None


# --- errors: S3Error and render -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),
        ("AuthorizationHeaderMalformed", 400),
        ("InvalidAccessKeyId", 403),
        ("InvalidArgument", 400),
        ("InvalidRequest", 400),
        ("MethodNotAllowed", 405),
        ("NotImplemented", 501),
        ("RequestTimeTooSkewed", 403),
        ("ServiceUnavailable", 503),
        ("SignatureDoesNotMatch", 403),
        ("XAmzContentSHA256Mismatch", 400),
    ],
)
def test_s3_error_status_per_code(code: str, status: int) -> None:
    error = S3Error(code)
    assert (error.code, error.status, error.message) == (code, status, KNOWN[code][1])


def test_s3_error_message_given_replaces_the_default() -> None:
    error = S3Error("AccessDenied", "Request has expired.")
    assert error.message == "Request has expired."
    assert str(error) == "AccessDenied: Request has expired."


def test_s3_error_unknown_code_is_refused() -> None:
    with pytest.raises(KeyError):
        S3Error("NoSuchThing")


def test_render_is_s3_error_xml_in_order() -> None:
    error = S3Error(
        "RequestTimeTooSkewed",
        extra={"RequestTime": "20250314T150926Z", "MaxAllowedSkewMilliseconds": "900000"},
    )
    data = render(error, "/bucket/key.txt", "4442587FB7D0A2F9")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(data)
    assert root.tag == "Error"
    assert [(c.tag, c.text) for c in root] == [
        ("Code", "RequestTimeTooSkewed"),
        ("Message", KNOWN["RequestTimeTooSkewed"][1]),
        ("RequestTime", "20250314T150926Z"),
        ("MaxAllowedSkewMilliseconds", "900000"),
        ("Resource", "/bucket/key.txt"),
        ("RequestId", "4442587FB7D0A2F9"),
    ]


def test_render_escapes_message_extra_and_resource() -> None:
    error = S3Error("InvalidArgument", "a < b & c > d", extra={"ArgumentValue": "<x>&amp;</x>"})
    root = ET.fromstring(render(error, "/bucket/a&b<c>.txt", new_request_id()))
    assert root.findtext("Message") == "a < b & c > d"
    assert root.findtext("ArgumentValue") == "<x>&amp;</x>"
    assert root.findtext("Resource") == "/bucket/a&b<c>.txt"


def test_render_encodes_non_ascii_as_utf8() -> None:
    data = render(S3Error("AccessDenied"), "/bucket/été/日本.txt", "R")
    assert "/bucket/été/日本.txt".encode() in data
    assert ET.fromstring(data).findtext("Resource") == "/bucket/été/日本.txt"


def test_new_request_ids_are_16_upper_hex_and_differ() -> None:
    ids = {new_request_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 16 and i == i.upper() and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(
    ("method", "operation", "status", "expected"),
    [
        ("GET", "GetObject", 404, True),
        ("GET", "ListObjectsV2", 404, True),
        ("HEAD", "HeadBucket", 404, True),
        ("HEAD", "GetObjectAcl", 404, True),  # a HEAD has no body to wait for
        ("GET", "GetObjectTagging", 404, False),  # NoSuchKey or NoSuchTagSet: the body says
        ("GET", "GetBucketPolicy", 404, False),
        ("GET", "GetObject", 403, False),
        ("GET", "GetObject", 200, False),
    ],
)
def test_not_found_by_status(method, operation, status, expected):
    assert fallback.not_found_by_status(method, operation, status) is expected
