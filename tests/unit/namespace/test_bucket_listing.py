"""addon.listing: ListBuckets answers of several backends merged into one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from addon.namespace.bucket_listing import BucketList
from addon.s3.xml import S3_NS

NS = {"s3": S3_NS}


def body(
    buckets: list[tuple[str, str]], owner: tuple[str, str] | None, xmlns: bool = True
) -> bytes:
    """A ListAllMyBucketsResult as a backend answers it; names and dates given already escaped."""
    attr = f' xmlns="{S3_NS}"' if xmlns else ""
    owner_xml = (
        f"<Owner><ID>{owner[0]}</ID><DisplayName>{owner[1]}</DisplayName></Owner>" if owner else ""
    )
    items = "".join(
        f"<Bucket><Name>{n}</Name><CreationDate>{d}</CreationDate></Bucket>" for n, d in buckets
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult{attr}>{owner_xml}'
        f"<Buckets>{items}</Buckets></ListAllMyBucketsResult>"
    ).encode()


PRIMARY = body(
    [("photos", "2024-01-01T00:00:00.000Z"), ("archive", "2024-02-01T00:00:00.000Z")],
    ("primary-owner-id", "primary"),
)
SECONDARY = body(
    [("backups", "2023-05-05T00:00:00.000Z"), ("photos", "2020-01-01T00:00:00.000Z")],
    ("secondary-owner-id", "secondary"),
    xmlns=False,
)


def merged(*bodies: bytes) -> BucketList:
    result = BucketList()
    for b in bodies:
        result.add(b)
    return result


def parsed(bucket_list: BucketList) -> ET.Element:
    return ET.fromstring(bucket_list.render())


def names_and_dates(root: ET.Element) -> list[tuple[str | None, str | None]]:
    return [
        (b.findtext("s3:Name", namespaces=NS), b.findtext("s3:CreationDate", namespaces=NS))
        for b in root.findall("s3:Buckets/s3:Bucket", NS)
    ]


def test_merges_buckets_of_both_bodies_with_and_without_xmlns() -> None:
    assert merged(PRIMARY, SECONDARY).buckets == {
        "photos": "2024-01-01T00:00:00.000Z",
        "archive": "2024-02-01T00:00:00.000Z",
        "backups": "2023-05-05T00:00:00.000Z",
    }


def test_duplicate_name_appears_once_with_the_first_backends_creation_date() -> None:
    root = parsed(merged(PRIMARY, SECONDARY))
    photos = [d for n, d in names_and_dates(root) if n == "photos"]
    assert photos == ["2024-01-01T00:00:00.000Z"]


def test_rendered_buckets_are_sorted_by_name() -> None:
    root = parsed(merged(PRIMARY, SECONDARY))
    assert [n for n, _ in names_and_dates(root)] == ["archive", "backups", "photos"]


def test_owner_is_the_first_backends() -> None:
    root = parsed(merged(PRIMARY, SECONDARY))
    assert root.findtext("s3:Owner/s3:ID", namespaces=NS) == "primary-owner-id"
    assert root.findtext("s3:Owner/s3:DisplayName", namespaces=NS) == "primary"


def test_owner_comes_from_the_first_body_that_has_one() -> None:
    no_owner = body([("first", "2024-01-01T00:00:00.000Z")], None)
    result = merged(no_owner, SECONDARY)
    assert (result.owner_id, result.owner_name) == ("secondary-owner-id", "secondary")


def test_render_has_the_s3_namespace_and_owner_even_with_no_owner_anywhere() -> None:
    root = parsed(merged(body([("only", "2024-01-01T00:00:00.000Z")], None)))
    assert root.tag == f"{{{S3_NS}}}ListAllMyBucketsResult"
    assert root.find("s3:Owner", NS) is not None
    assert names_and_dates(root) == [("only", "2024-01-01T00:00:00.000Z")]


def test_render_declares_utf8_xml() -> None:
    assert merged(PRIMARY).render().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_empty_merge_renders_an_empty_bucket_list() -> None:
    root = parsed(BucketList())
    assert root.find("s3:Buckets", NS) is not None
    assert names_and_dates(root) == []


def test_body_without_buckets_element_adds_nothing() -> None:
    result = merged(
        f'<ListAllMyBucketsResult xmlns="{S3_NS}"><Owner><ID>x</ID></Owner>'
        "</ListAllMyBucketsResult>".encode()
    )
    assert result.buckets == {}
    assert result.owner_id == "x"


def test_whitespace_around_names_and_dates_is_stripped() -> None:
    pretty = body([("\n    spaced\n  ", "\n 2024-01-01T00:00:00.000Z ")], ("id", "name"))
    assert merged(pretty).buckets == {"spaced": "2024-01-01T00:00:00.000Z"}


def test_names_with_xml_specials_are_escaped_on_render() -> None:
    tricky = body(
        [("a&amp;b", "2024-01-01T00:00:00.000Z"), ("x&lt;y", "2024-01-02T00:00:00.000Z")],
        ("id&amp;1", "me &lt;you&gt;"),
    )
    root = parsed(merged(tricky))
    assert [n for n, _ in names_and_dates(root)] == ["a&b", "x<y"]
    assert root.findtext("s3:Owner/s3:DisplayName", namespaces=NS) == "me <you>"


@pytest.mark.parametrize(
    "bad",
    [b"", b"not xml at all", b"<ListAllMyBucketsResult>", b"<html><body>502</body>"],
    ids=["empty", "text", "unclosed", "broken-html"],
)
def test_non_xml_raises_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError, match="not XML"):
        BucketList().add(bad)


@pytest.mark.parametrize(
    "bad",
    [
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code></Error>',
        f'<ListBucketResult xmlns="{S3_NS}"><Name>b</Name></ListBucketResult>'.encode(),
        b"<html><body>ok</body></html>",
    ],
    ids=["s3-error", "list-objects", "html"],
)
def test_wrong_root_raises_value_error_and_adds_nothing(bad: bytes) -> None:
    result = merged(PRIMARY)
    with pytest.raises(ValueError, match="unexpected root element"):
        result.add(bad)
    assert sorted(result.buckets) == ["archive", "photos"]
