"""Reading S3's XML answers: element names without their namespace (backends differ in
whether they send S3's), children and text by name."""

from __future__ import annotations

import xml.etree.ElementTree as ET

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if local(c.tag) == name), None)


def children(element: ET.Element) -> dict[str, ET.Element]:
    """The first child of each name, in one pass (for elements whose fields are all read)."""
    found: dict[str, ET.Element] = {}
    for c in element:
        found.setdefault(local(c.tag), c)
    return found


def text(element: ET.Element, name: str, strip: bool = True) -> str:
    """The child's text; `strip=False` for keys and prefixes, whose spaces are theirs."""
    return value(child(element, name), strip)


def value(element: ET.Element | None, strip: bool = True) -> str:
    """An element's own text ("" if there is no element)."""
    found = (element.text or "") if element is not None else ""
    return found.strip() if strip else found


def root(body: bytes, expected: str) -> ET.Element:
    """The document's root element, checked to be `expected`; ValueError if it is not."""
    try:
        element = ET.fromstring(body)
    except ET.ParseError as e:
        raise ValueError(f"not XML: {e}") from None
    if local(element.tag) != expected:
        raise ValueError(f"unexpected root element {local(element.tag)}")
    return element
