"""S3's XML: answers read (element names without their namespace, since backends differ in
whether they send S3's; children and text by name), and text written (`escape`).

Keys may hold C0 controls, which XML 1.0 cannot carry in any form: AWS writes them as character
references (`<Key>a&#x19;&#x7;</Key>`, an answer of AWS's quoted in minio/minio-py#716), moto
writes raw what it echoes of a request (a ListObjectsV2's StartAfter). `escape` writes them as
AWS does; `root` reads either form (a parser refusing both, an answer it refuses is parsed again
with them moved into a private-use plane, and back once parsed), so that a backend's echo of an
odd prefix does not make its listing unreadable.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"

_ESCAPED = re.compile(r"[\x00-\x08\x0b-\x1f&<>]")  # TAB and LF are XML's as they are
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_UNCARRIED = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|&#(x[0-9a-fA-F]{1,6}|[0-9]{1,7});")
_PLANE = 0xF0000  # private use: where the controls XML refuses wait to be read
_BACK = {_PLANE + c: c for c in range(0x20)}


def escape(text: str) -> str:
    """`text` as an element's text, as S3 writes it: &, < and > as entities, C0 controls but TAB
    and LF as character references (a raw CR would be read as LF: XML normalises line ends)."""
    return _ESCAPED.sub(lambda m: _ENTITIES.get(m.group(0)) or f"&#x{ord(m.group(0)):X};", text)


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
        try:
            element = ET.fromstring(_UNCARRIED.sub(_carried, body))
        except ET.ParseError:
            raise ValueError(f"not XML: {e}") from None
        for inner in element.iter():
            inner.text = inner.text and inner.text.translate(_BACK)
    if local(element.tag) != expected:
        raise ValueError(f"unexpected root element {local(element.tag)}")
    return element


def _carried(match: re.Match) -> bytes:
    """A C0 control XML 1.0 refuses (raw, or a character reference), moved where it is not."""
    number = match.group(1)
    if number is None:
        code = match.group(0)[0]
    else:
        code = int(number[1:], 16) if number.startswith(b"x") else int(number)
    if code >= 0x20 or code in (0x9, 0xA, 0xD):
        return match.group(0)  # a reference XML reads as it is
    return chr(_PLANE + code).encode()
