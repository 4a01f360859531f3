"""addon.namespace.listing_pages without a network: the client's request read, continuation
tokens, a backend's page read, and the client's page written."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from addon.namespace.listing_merge import Entry, Merge
from addon.namespace.listing_pages import (
    ListingRequest,
    Refusal,
    Tokens,
    page_of,
    parse_page,
    render,
)
from addon.s3.errors import S3Error

NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}


TOKENS = Tokens("root-secret")


def test_a_continuation_token_round_trips_and_cannot_be_forged():
    token = TOKENS.make("dir/é", "dir/", "/")
    assert TOKENS.position(token, "dir/", "/") == "dir/é"
    body, _, mac = token.partition(".")
    for forged in (body + "." + "0" * len(mac), "x" + token, "garbage"):
        with pytest.raises(S3Error) as bad:
            TOKENS.position(forged, "dir/", "/")
        assert bad.value.code == "InvalidArgument"
    with pytest.raises(S3Error):
        TOKENS.position(token, "other/", "/")  # the token belongs to another listing
    assert Tokens("another-secret").make("a", "", "") != Tokens("root-secret").make("a", "", "")


@pytest.mark.parametrize("max_keys", ["x", "-1"])
def test_a_bad_max_keys_is_invalid_argument(max_keys):
    with pytest.raises(S3Error) as bad:
        ListingRequest.parse(True, "b", [("list-type", "2"), ("max-keys", max_keys)], TOKENS)
    assert bad.value.code == "InvalidArgument"


def test_max_keys_over_1000_is_1000():
    request = ListingRequest.parse(True, "b", [("max-keys", "5000")], TOKENS)
    assert Merge(1, None, request.max_keys).max_keys == 1000


def test_parse_page_decodes_what_a_backend_url_encoded():
    body = (
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        b"<Contents><Key>a+b%2Bc%C3%A9</Key><ETag>&quot;e&quot;</ETag><Size>3</Size>"
        b"<Owner><ID>o</ID></Owner><StorageClass>STANDARD</StorageClass></Contents>"
        b"<CommonPrefixes><Prefix>d%2F1/</Prefix></CommonPrefixes></ListBucketResult>"
    )
    page = parse_page(2, body)
    assert page.truncated
    assert [(e.name, e.prefix, e.backend) for e in page.entries] == [
        ("a b+cé", False, 2),
        ("d/1/", True, 2),
    ]
    assert dict(page.entries[0].fields)["ETag"] == '"e"'


def test_parse_page_reads_a_page_that_echoes_a_control_raw():
    """moto echoes StartAfter as sent, unencoded: a U+0001 in it must not fail the listing."""
    body = (
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<IsTruncated>false</IsTruncated><Contents><Key>h%0Dj</Key></Contents>"
        b"<EncodingType>url</EncodingType><StartAfter>g\x01h</StartAfter></ListBucketResult>"
    )
    assert [e.name for e in parse_page(0, body).entries] == ["h\rj"]


def _error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>m</Message></Error>".encode()


_PAGE = b"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>b</Key></Contents>"
_PAGE += b"</ListBucketResult>"


@pytest.mark.parametrize(
    ("status", "body", "start_after", "read"),
    [
        (200, _PAGE, None, ["b"]),
        (200, _PAGE, "a", ["b"]),
        (404, _error("NoSuchBucket"), None, None),  # it does not have the bucket
        # An S3 error meant for the client is the listing's answer, as it is.
        (403, _error("AccessDenied"), None, Refusal),  # a bucket policy's Deny of ListBucket
        (400, _error("InvalidArgument"), None, Refusal),
        (404, _error("NoSuchKey"), None, Refusal),
        # What makes the listing impossible: 503 "cannot be listed", never a partial listing.
        (503, _error("SlowDown"), None, ValueError),
        (500, b"", None, ValueError),
        (403, b"<html>forbidden</html>", None, ValueError),  # not S3's
        (200, b"<html/>", None, ValueError),
        (200, _PAGE, "b", ValueError),  # a key it was asked to list after: out of S3's order
    ],
)
def test_what_a_backends_answer_to_a_page_request_is(status, body, start_after, read):
    if isinstance(read, type):
        with pytest.raises(read) as raised:
            page_of(1, status, body, start_after)
        if read is Refusal:
            refusal = raised.value
            assert (refusal.backend, refusal.status, refusal.body) == (1, status, body)
        return
    page = page_of(1, status, body, start_after)
    assert (page and [e.name for e in page.entries]) == read


def test_an_empty_continuation_token_is_none_and_is_echoed():
    """As S3 answers ceph/s3-tests' test_bucket_listv2_continuationtoken_empty."""
    request = ListingRequest.parse(True, "b", [("continuation-token", "")], TOKENS)
    assert (request.start, request.token) == (None, "")
    root = page_xml(True, [("list-type", "2"), ("continuation-token", "")], [])
    assert root.find("s3:ContinuationToken", NS) is not None
    assert root.findtext("s3:ContinuationToken", namespaces=NS) == ""


def test_parse_page_refuses_what_is_not_a_listing():
    for body in (b"<html/>", b"not xml", b"<Error><Code>x</Code></Error>"):
        with pytest.raises(ValueError):
            parse_page(0, body)


def page_xml(v2: bool, query, emitted, truncated=False) -> ET.Element:
    request = ListingRequest.parse(v2, "bkt", query, TOKENS)
    merge = Merge(1, request.start, request.max_keys)
    merge.emitted = list(emitted)
    if truncated:
        merge.streams[0].done = False
    else:
        merge.streams[0].done = True
    return ET.fromstring(render(request, merge, TOKENS))


ENTRIES = [
    Entry("a b", False, 0, (("ETag", '"1"'), ("Size", "1"), ("Owner.ID", "me"))),
    Entry("d/", True, 1),
]


def test_v2_page_has_key_count_and_a_token_when_truncated():
    root = page_xml(True, [("list-type", "2"), ("delimiter", "/")], ENTRIES, truncated=True)
    assert root.findtext("s3:KeyCount", namespaces=NS) == "2"
    assert root.findtext("s3:IsTruncated", namespaces=NS) == "true"
    token = root.findtext("s3:NextContinuationToken", namespaces=NS)
    assert TOKENS.position(token, "", "/") == "d/"
    assert root.find("s3:Contents/s3:Owner", NS) is None  # FetchOwner not asked
    assert [e.text for e in root.findall("s3:CommonPrefixes/s3:Prefix", NS)] == ["d/"]


def test_v1_page_has_next_marker_only_with_a_delimiter():
    with_delimiter = page_xml(False, [("delimiter", "/")], ENTRIES, truncated=True)
    assert with_delimiter.findtext("s3:NextMarker", namespaces=NS) == "d/"
    without = page_xml(False, [], ENTRIES[:1], truncated=True)
    assert without.find("s3:NextMarker", NS) is None
    assert without.findtext("s3:Contents/s3:Owner/s3:ID", namespaces=NS) == "me"  # v1: always


@pytest.mark.parametrize(
    ("v2", "asked", "element", "written"),
    [
        # v1's Prefix comes back as sent (botocore does not decode it: a prefix "\n" came back
        # as "%0A" to ceph/s3-tests); v2 encodes it (ListObjectsV2's EncodingType documentation).
        (False, ("prefix", "\n"), "Prefix", "\n"),
        (True, ("prefix", "\n"), "Prefix", "%0A"),
        (False, ("prefix", "é"), "Prefix", "é"),
        (False, ("delimiter", "\t"), "Delimiter", "%09"),
        (True, ("delimiter", "\t"), "Delimiter", "%09"),
        (False, ("marker", "é"), "Marker", "%C3%A9"),
        (True, ("start-after", "é"), "StartAfter", "%C3%A9"),
    ],
)
def test_what_encoding_type_url_encodes_by_version(v2, asked, element, written):
    root = page_xml(v2, [("encoding-type", "url"), asked], [])
    assert root.findtext(f"s3:{element}", namespaces=NS) == written


def test_a_name_with_controls_is_written_as_s3_writes_it():
    """Not URL-encoded: a CR as a reference (raw, XML would read it as LF), U+0001 as AWS writes
    it (XML 1.0 allows it in no form: encoding-type=url is how clients read such keys)."""
    entries = [Entry("cr\r\x01", False, 0, ()), Entry("tab\t/", True, 0)]
    request = ListingRequest.parse(False, "bkt", [("delimiter", "/")], TOKENS)
    merge = Merge(1, None, 1000)
    merge.emitted = entries
    merge.streams[0].done = True
    body = render(request, merge, TOKENS)
    assert b"<Key>cr&#xD;&#x1;</Key>" in body
    assert b"<Prefix>tab\t/</Prefix>" in body


def test_url_encoding_when_asked():
    root = page_xml(True, [("encoding-type", "url"), ("prefix", "a ")], ENTRIES)
    assert root.findtext("s3:Contents/s3:Key", namespaces=NS) == "a%20b"
    assert root.findtext("s3:Prefix", namespaces=NS) == "a%20"
    assert root.findtext("s3:EncodingType", namespaces=NS) == "url"


@pytest.mark.parametrize(
    ("prefix", "delimiter", "start", "expected"),
    [
        ("d1", "/", "d1", False),  # the key "d1" itself, not a prefix
        ("d1", "/", "d1/", True),
        ("", "/", "a/b/", False),  # a key: its first delimiter is not its end
        ("", "/", "a/", True),
        ("", "", "a/", False),  # no delimiter, no common prefixes
        ("x/", "/", "a/", False),  # outside the prefix
    ],
)
def test_a_page_starts_after_a_common_prefix_only_where_one_can_be(
    prefix, delimiter, start, expected
):
    query = [("prefix", prefix), ("delimiter", delimiter), ("start-after", start)]
    request = ListingRequest.parse(True, "b", query, TOKENS)
    assert request.starts_after_prefix is expected


def test_a_backend_listing_out_of_s3s_order_is_refused():
    """SeaweedFS lists in directory order (a, a/b, a+b): merging that would skip or repeat."""
    body = (
        b"<ListBucketResult><IsTruncated>false</IsTruncated>"
        b"<Contents><Key>a</Key></Contents><Contents><Key>a/b</Key></Contents>"
        b"<Contents><Key>a+b</Key></Contents></ListBucketResult>"
    )
    with pytest.raises(ValueError, match="out of S3's order"):
        parse_page(1, body)
