"""addon.errors: the S3 XML errors the proxy answers with."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from addon.s3.errors import KNOWN, S3Error, error_response, new_request_id, render

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


def test_render_writes_a_key_with_controls_as_s3_does() -> None:
    """A raw CR would be read back as LF, a raw U+0001 makes the error unparseable."""
    data = render(S3Error("AccessDenied"), "/bucket/cr\r\x01", "R")
    assert b"<Resource>/bucket/cr&#xD;&#x1;</Resource>" in data


def test_new_request_ids_are_16_upper_hex_and_differ() -> None:
    ids = {new_request_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 16 and i == i.upper() and int(i, 16) >= 0 for i in ids)


def test_error_responses_to_head_have_no_body() -> None:
    response = error_response(S3Error("AccessDenied"), "HEAD", "/b", "RID")
    assert (response.status_code, response.content) == (403, b"")
    assert response.headers["x-amz-request-id"] == "RID"
