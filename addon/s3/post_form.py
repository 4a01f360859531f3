"""Browser form uploads (POST Object): the multipart/form-data body, read up to its file.

A POST Object is `POST /bucket` with a multipart/form-data body: the fields first (`key`, the
policy and its signature, `Content-Type`, `x-amz-meta-*`, ...), then the part named `file`,
whose content is the object; S3 ignores whatever follows it. S3 refuses more than 20 KB before
the file, and the file may be of any size. So the fields are read whole (`FormReader`, bounded),
to be checked and rewritten (`FormHead.rewritten`), and the file streams past
(`post_file.FileTail`), counted for the policy's `content-length-range`, never held. No I/O:
fed bytes as they arrive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from addon.s3.errors import S3Error

MAX_PRE_DATA = 20 * 1024  # S3's limit on what precedes the file's content
MAX_BOUNDARY = 70  # RFC 2046
MAX_KEY_BYTES = 1024
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR = re.compile(r'\\([()<>@,;:\\"/\[\]?=])')
FILENAME = "${filename}"


def malformed() -> S3Error:
    return S3Error("MalformedPOSTRequest")


def missing_field(name: str) -> S3Error:
    """S3's answer to a form without a field it needs (or with it after the file)."""
    return S3Error(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check "
        "the order of the fields.",
        extra={"ArgumentName": name, "ArgumentValue": ""},
    )


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """A Content-Type's media type (lower case) and its parameters (names in lower case)."""
    media, _, rest = content_type.partition(";")
    params = {k.lower(): _unquote(v) for k, v in _PARAM.findall(";" + rest)}
    return media.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/form-data body (the caller knows it is one)."""
    boundary = media_type(content_type)[1].get("boundary", "")
    if not boundary or len(boundary) > MAX_BOUNDARY or not boundary.isascii():
        raise malformed()
    return boundary.encode("ascii")


def _unquote(value: str) -> str:
    """A parameter's value. A backslash escapes only a special character: browsers send a
    file's name as it is (`C:\\Users\\me.png` from older ones), not as RFC 2045 quotes it."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return value


@dataclass(frozen=True)
class Part:
    """One part of the form, as sent: `raw` runs from its delimiter line to the line end that
    closes its value (the file part's: to the empty line that ends its headers)."""

    name: str
    value: str  # UTF-8; bytes that are not are kept as surrogates, and sent back as they came
    raw: bytes
    filename: str | None = None


@dataclass(frozen=True)
class FormHead:
    """A form read up to its file's content."""

    boundary: bytes
    fields: tuple[Part, ...]  # the parts before the file, in order
    file: Part
    size: int  # bytes of the body before the file's content
    rest: bytes  # the file's content that came with the head

    def rewritten(self, dropped: Iterable[str], added: Iterable[tuple[str, str]]) -> bytes:
        """The head as the backend gets it: the fields as sent but those named in `dropped`
        (lower case), then `added`, then the file part's head. Any preamble is left out."""
        gone = set(dropped)
        kept = [p.raw for p in self.fields if p.name.lower() not in gone]
        new = [self.field(name, value) for name, value in added]
        return b"".join([*kept, *new, self.file.raw])

    def field(self, name: str, value: str) -> bytes:
        disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
        return b"".join(
            [b"--", self.boundary, b"\r\n", disposition, b"\r\n\r\n", _bytes(value), b"\r\n"]
        )


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class FormReader:
    """Feed it the body as it arrives; it returns the FormHead once the file's part has begun.

    Bounded: more than MAX_PRE_DATA before the file is refused. Each byte is searched once.
    """

    def __init__(self, boundary: bytes) -> None:
        self.boundary = boundary
        self.delimiter = b"\r\n--" + boundary
        self.buffer = bytearray()
        self.fields: list[Part] = []
        self.part = 0  # where the current part's delimiter starts
        self.mark = 0  # where the current state reads from
        self.scanned = 0  # where the next search may start
        self.state = self._first_delimiter
        self.head: FormHead | None = None

    def feed(self, data: bytes) -> FormHead | None:
        self.buffer += data
        while self.head is None and self.state():
            pass
        if (self.head.size if self.head else len(self.buffer)) > MAX_PRE_DATA:
            raise S3Error("MaxPostPreDataLengthExceededError")
        return self.head

    def finish(self) -> None:
        """The body ended before the file's part: not a form S3 takes."""
        if self.head is None:
            raise malformed()

    def _find(self, needle: bytes, start: int) -> int:
        found = self.buffer.find(needle, max(start, self.scanned))
        if found < 0:
            self.scanned = max(start, len(self.buffer) - len(needle) + 1)
        return found

    def _next(self, state: Callable[[], bool], mark: int) -> bool:
        self.state, self.mark, self.scanned = state, mark, 0
        return True

    def _first_delimiter(self) -> bool:
        dash = self.delimiter[2:]
        if self.buffer.startswith(dash):
            return self._next(self._delimiter_end, len(dash))
        if len(self.buffer) < len(dash) and dash.startswith(self.buffer):
            return False
        found = self._find(self.delimiter, 0)  # after a preamble, which is ignored
        if found < 0:
            return False
        self.part = found + 2
        return self._next(self._delimiter_end, found + len(self.delimiter))

    def _delimiter_end(self) -> bool:
        """After a delimiter: `--` closes the form, else (transport padding and) a line end."""
        rest = self.buffer[self.mark : self.mark + 2]
        if rest == b"--":
            raise S3Error("IncorrectNumberOfFilesInPostRequest")  # the form ended: no file
        end = self._find(b"\r\n", self.mark)
        if end < 0:
            return False
        if self.buffer[self.mark : end].strip(b" \t"):
            raise malformed()
        return self._next(self._headers, end)  # from the line end: a part may have no headers

    def _headers(self) -> bool:
        end = self._find(b"\r\n\r\n", self.mark)
        if end < 0:
            return False
        name, filename = _disposition(bytes(self.buffer[self.mark + 2 : end]))
        if name.lower() == "file":
            size = end + 4
            file = Part(name, "", bytes(self.buffer[self.part : size]), filename or "")
            rest = bytes(self.buffer[size:])
            self.head = FormHead(self.boundary, tuple(self.fields), file, size, rest)
            return False
        self.fields.append(Part(name, "", b"", filename))  # its value comes next
        return self._next(self._value, end + 4)

    def _value(self) -> bool:
        end = self._find(self.delimiter, self.mark)
        if end < 0:
            return False
        part = self.fields[-1]
        value = _text(bytes(self.buffer[self.mark : end]))
        raw = bytes(self.buffer[self.part : end + 2])
        self.fields[-1] = Part(part.name, value, raw, part.filename)
        self.part = end + 2
        return self._next(self._delimiter_end, end + len(self.delimiter))


def _disposition(block: bytes) -> tuple[str, str | None]:
    """A part's name and filename, from its Content-Disposition header."""
    for line in _text(block).split("\r\n") if block else []:
        header, sep, value = line.partition(":")
        if not sep or header.strip() != header or not header:
            raise malformed()
        if header.lower() != "content-disposition":
            continue
        kind, params = media_type(value)
        if kind != "form-data" or "name" not in params:
            raise malformed()
        return params["name"], params.get("filename")
    raise malformed()


def key_of(fields: dict[str, str], filename: str) -> str:
    """The object's key: the `key` field, `${filename}` replaced by the file's name (what follows
    its last slash or backslash), as S3 does before it checks the policy."""
    if "key" not in fields:
        raise missing_field("key")
    base = re.split(r"[/\\]", filename)[-1]
    key = fields["key"].replace(FILENAME, base)
    if not key:
        raise S3Error(
            "InvalidArgument",
            "User key must have a length greater than 0.",
            extra={"ArgumentName": "key", "ArgumentValue": ""},
        )
    size = len(_bytes(key))
    if size > MAX_KEY_BYTES:
        extra = {"Size": str(size), "MaxSizeAllowed": str(MAX_KEY_BYTES)}
        raise S3Error("KeyTooLongError", extra=extra)
    return key


def field_values(head: FormHead) -> dict[str, str]:
    """The fields by name in lower case (S3's names are case-insensitive). A name given twice is
    refused: the policy must hold for the one value the backend will use, whichever it takes.
    `x-ignore-` fields, which S3 never reads, may repeat."""
    values: dict[str, str] = {}
    for part in head.fields:
        name = part.name.lower()
        if name in values and not name.startswith("x-ignore-"):
            raise S3Error(
                "InvalidArgument",
                f"Bucket POST must contain at most one field named '{part.name}'.",
                extra={"ArgumentName": part.name, "ArgumentValue": part.value[:200]},
            )
        values[name] = part.value
    return values
