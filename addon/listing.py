"""ListBuckets across backends: each bucket name once, sorted by name, with an Owner."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass
class BucketList:
    """Buckets gathered so far; the first backend to name a bucket keeps it (primary first)."""

    owner_id: str = ""
    owner_name: str = ""
    buckets: dict[str, str] = field(default_factory=dict)  # name -> creation date

    def add(self, body: bytes) -> None:
        """Add one backend's ListAllMyBucketsResult; raises ValueError when it is not one."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            raise ValueError(f"not XML: {e}") from None
        if _local(root.tag) != "ListAllMyBucketsResult":
            raise ValueError(f"unexpected root element {_local(root.tag)}")
        if not self.owner_id:
            owner = _child(root, "Owner")
            if owner is not None:
                self.owner_id = _text(owner, "ID")
                self.owner_name = _text(owner, "DisplayName")
        buckets = _child(root, "Buckets")
        for bucket in buckets if buckets is not None else ():
            name = _text(bucket, "Name")
            if name:
                self.buckets.setdefault(name, _text(bucket, "CreationDate"))

    def render(self) -> bytes:
        items = "".join(
            f"<Bucket><Name>{escape(name)}</Name><CreationDate>{escape(date)}</CreationDate>"
            "</Bucket>"
            for name, date in sorted(self.buckets.items())
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="{S3_NS}">'
            f"<Owner><ID>{escape(self.owner_id)}</ID>"
            f"<DisplayName>{escape(self.owner_name)}</DisplayName></Owner>"
            f"<Buckets>{items}</Buckets></ListAllMyBucketsResult>"
        ).encode()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _text(element: ET.Element, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""
