"""Reading S3's XML answers: element names without their namespace (backends differ in
whether they send S3's), children and text by name."""

from __future__ import annotations

import xml.etree.ElementTree as ET

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if local(c.tag) == name), None)


def text(element: ET.Element, name: str) -> str:
    found = child(element, name)
    return (found.text or "").strip() if found is not None else ""


def root(body: bytes, expected: str) -> ET.Element:
    """The document's root element, checked to be `expected`; ValueError if it is not."""
    try:
        element = ET.fromstring(body)
    except ET.ParseError as e:
        raise ValueError(f"not XML: {e}") from None
    if local(element.tag) != expected:
        raise ValueError(f"unexpected root element {local(element.tag)}")
    return element
