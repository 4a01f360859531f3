"""addon.s3.xml: S3's XML text written as S3 writes it, and read whichever way a server wrote it."""

from __future__ import annotations

import pytest

from addon.s3 import xml


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("a&b<c>d", "a&amp;b&lt;c&gt;d"),
        ("tab\tline feed\n", "tab\tline feed\n"),  # XML reads them as they are
        ("cr\r", "cr&#xD;"),  # raw, XML would read it as a line feed
        ("one\x01", "one&#x1;"),  # as AWS writes it; XML 1.0 allows U+0001 in no form
        ("\x1f\x00\x0b", "&#x1F;&#x0;&#xB;"),
        ("é日😀\x7f", "é日😀\x7f"),
    ],
)
def test_escape_writes_text_as_s3_does(text, written):
    assert xml.escape(text) == written


@pytest.mark.parametrize("text", ["cr\r", "tab\t", "a&b<c>", "é", "one\x01two", "\x1f", "\x00"])
def test_what_escape_writes_reads_back(text):
    body = f"<R><V>{xml.escape(text)}</V></R>".encode()
    assert xml.text(xml.root(body, "R"), "V", strip=False) == text


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (b"g\x01h", "g\x01h"),  # raw, as moto echoes a request's StartAfter
        (b"&#x1;&#2;&#x1F;", "\x01\x02\x1f"),  # references, as AWS writes them
        (b"&#xD;&#9;&#xe9;", "\r\té"),  # references XML reads itself
        ("\U000f0001".encode(), "\x01"),  # ... a key in the plane that carries them is lost
    ],
)
def test_root_reads_controls_xml_cannot_carry(written, read):
    """Only when the strict parse fails: a private-use U+F0001 in a well-formed answer is kept."""
    body = b"<R><Bad>\x02</Bad><V>" + written + b"</V></R>"
    assert xml.text(xml.root(body, "R"), "V", strip=False) == read


def test_a_well_formed_answer_keeps_private_use_characters():
    body = "<R><V>\U000f0001</V></R>".encode()
    assert xml.text(xml.root(body, "R"), "V", strip=False) == "\U000f0001"


def test_what_is_not_xml_is_still_refused():
    for body in (b"<R><V>unclosed</R>", b"\x01", b"not xml"):
        with pytest.raises(ValueError):
            xml.root(body, "R")
