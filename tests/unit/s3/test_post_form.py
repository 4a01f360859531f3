"""A form's body read as mitmproxy hands it over (any pieces), up to its file, and the file's
content counted as it streams past: what S3 accepts, and each thing it refuses."""

from __future__ import annotations

import os

import pytest

from addon.s3 import post_form
from addon.s3.errors import S3Error
from addon.s3.post_file import FileTail
from addon.s3.post_form import MAX_PRE_DATA, FormHead, FormReader
from tests.support.post_forms import encode

B = "xYzZY"
TYPE = f"multipart/form-data; boundary={B}"
FIELDS = {"key": "photos/${filename}", "Content-Type": "image/png", "x-amz-meta-note": "é €"}


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def read(body: bytes, size: int | None = None) -> FormHead:
    """The head FormReader gives for `body` fed in pieces of `size` (whole by default)."""
    reader = FormReader(B.encode())
    for piece in pieces(body, size or len(body) or 1):
        head = reader.feed(piece)
        if head is not None:
            return head
    reader.finish()
    raise AssertionError("finish must refuse a body without a file")


def refusal(body: bytes, size: int | None = None) -> S3Error:
    with pytest.raises(S3Error) as refused:
        read(body, size)
    return refused.value


def part(name: str, value: str, extra: str = "") -> bytes:
    return (
        f'--{B}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n{value}\r\n'.encode()
    )


FILE_HEAD = (
    f'--{B}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'.encode()
)


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100_000])
def test_a_browser_form_is_read_up_to_its_file_whatever_the_pieces(size):
    content = os.urandom(3000)
    _, body = encode(FIELDS, ("dir/cat.png", content), boundary=B)
    head = read(body, size)
    assert [(p.name, p.value) for p in head.fields] == list(FIELDS.items())
    assert head.file.filename == "dir/cat.png"
    assert body[: head.size] == b"".join(p.raw for p in head.fields) + head.file.raw
    assert body.startswith(body[: head.size] + head.rest)  # the rest is the file's content
    assert len(head.rest) <= len(body) - head.size


def test_the_parts_are_kept_as_sent_and_a_head_rewritten_keeps_the_others():
    body = (
        part("Key", "k") + part("acl", "private", extra="\r\nContent-Type: text/plain") + FILE_HEAD
    )
    head = read(body + b"DATA")
    assert head.fields[1].raw == part("acl", "private", extra="\r\nContent-Type: text/plain")
    assert head.rest == b"DATA"
    new = head.rewritten({"key"}, [("key", "other"), ("x", "é")])
    assert new == part("acl", "private", "\r\nContent-Type: text/plain") + part("key", "other") + (
        part("x", "é") + FILE_HEAD
    )


@pytest.mark.parametrize(
    "body, fields",
    [
        # a preamble before the first delimiter is ignored, as RFC 2046 says
        (b"some preamble\r\n" + part("key", "k") + FILE_HEAD, [("key", "k")]),
        # transport padding after a delimiter
        (
            part("key", "k").replace(B.encode() + b"\r\n", B.encode() + b" \t\r\n") + FILE_HEAD,
            [("key", "k")],
        ),
        # a value holding CRLF, dashes and most of the boundary
        (
            part("key", f"a\r\n--{B[:-1]}\r\n--\r\nb") + FILE_HEAD,
            [("key", f"a\r\n--{B[:-1]}\r\n--\r\nb")],
        ),
        # an empty value, a quoted name with a semicolon
        (part("a;b", "") + FILE_HEAD, [("a;b", "")]),
        # the file as a text part (no filename) and no fields at all
        (f'--{B}\r\nContent-Disposition: form-data; name="FILE"\r\n\r\n'.encode(), []),
    ],
    ids=["preamble", "padding", "value-like-a-delimiter", "odd-name", "file-first"],
)
def test_forms_s3_takes(body, fields):
    for size in (1, 5, len(body)):
        head = read(body + b"xyz", size)
        assert [(p.name, p.value) for p in head.fields] == fields
        assert head.rest == b"xyz"[: len(head.rest)]


@pytest.mark.parametrize(
    "body, code",
    [
        (b"", "MalformedPOSTRequest"),
        (b"key=k&file=x", "MalformedPOSTRequest"),
        (part("key", "k"), "MalformedPOSTRequest"),  # ends before any file
        (part("key", "k") + f"--{B}--\r\n".encode(), "IncorrectNumberOfFilesInPostRequest"),
        (f"--{B}--\r\n".encode(), "IncorrectNumberOfFilesInPostRequest"),
        (part("key", "k").replace(b"form-data", b"attachment") + FILE_HEAD, "MalformedPOSTRequest"),
        (part("key", "k").replace(b' name="key"', b"") + FILE_HEAD, "MalformedPOSTRequest"),
        (f"--{B}\r\n\r\nvalue\r\n".encode() + FILE_HEAD, "MalformedPOSTRequest"),  # no headers
        (f"--{B}\r\nBad header line\r\n\r\nv\r\n".encode() + FILE_HEAD, "MalformedPOSTRequest"),
        (f"--{B}junk\r\n".encode() + FILE_HEAD, "MalformedPOSTRequest"),
        (FILE_HEAD[:-2], "MalformedPOSTRequest"),  # the file's headers never end
    ],
    ids=[
        "empty",
        "urlencoded",
        "no-file",
        "closed-without-file",
        "no-parts",
        "not-form-data",
        "no-name",
        "no-headers",
        "bad-header",
        "bad-delimiter-line",
        "file-head-cut",
    ],
)
def test_forms_s3_refuses(body, code):
    for size in (1, 3, max(1, len(body))):
        assert refusal(body, size).code == code


def test_more_than_20_kib_before_the_file_is_refused_before_the_file_comes():
    big = part("x-ignore-pad", "p" * MAX_PRE_DATA)
    reader = FormReader(B.encode())
    with pytest.raises(S3Error) as refused:
        for piece in pieces(big, 4096):
            reader.feed(piece)
    assert refused.value.code == "MaxPostPreDataLengthExceededError"
    fits = part("x-ignore-pad", "p" * (MAX_PRE_DATA - 300)) + FILE_HEAD
    assert len(read(fits).fields) == 1
    over = part("x-ignore-pad", "p" * (MAX_PRE_DATA - 100)) + FILE_HEAD
    assert refusal(over).code == "MaxPostPreDataLengthExceededError"


@pytest.mark.parametrize(
    "content_type, boundary",
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; charset=utf-8; boundary="a b;c"', b"a b;c"),
        ("Multipart/Form-Data;BOUNDARY=----WebKitFormBoundary7MA4", b"----WebKitFormBoundary7MA4"),
    ],
)
def test_the_boundary_is_read_from_the_content_type(content_type, boundary):
    assert post_form.media_type(content_type)[0] == "multipart/form-data"
    assert post_form.boundary_of(content_type) == boundary


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "x; boundary=" + "b" * 71],
)
def test_a_content_type_without_a_usable_boundary_is_malformed(content_type):
    with pytest.raises(S3Error) as refused:
        post_form.boundary_of(content_type)
    assert refused.value.code == "MalformedPOSTRequest"


# --- the key and the fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key, filename, expected",
    [
        ("k", "ignored.txt", "k"),
        ("up/${filename}", "cat.png", "up/cat.png"),
        ("up/${filename}", "C:\\Users\\me\\cat.png", "up/cat.png"),
        ("up/${filename}", "a/b\\c.txt", "up/c.txt"),
        ("${filename}-${filename}", "x", "x-x"),
        ("\\$foo.txt", "", "\\$foo.txt"),
    ],
)
def test_the_key_is_the_key_field_with_the_file_name_in_place(key, filename, expected):
    assert post_form.key_of({"key": key}, filename) == expected


@pytest.mark.parametrize(
    "disposition, filename",
    [
        ('filename="C:\\Users\\me\\cat.png"', "C:\\Users\\me\\cat.png"),  # older browsers
        ('filename="a\\"b\\\\c.txt"', 'a"b\\c.txt'),  # RFC 2045's quoted pairs
        ("filename=plain.txt", "plain.txt"),
        ('filename=""', ""),
    ],
)
def test_the_file_name_is_read_as_browsers_write_it(disposition, filename):
    head = read(
        f'--{B}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n\r\n'.encode()
    )
    assert head.file.filename == filename


@pytest.mark.parametrize(
    "fields, filename, code, message",
    [
        ({}, "a", "InvalidArgument", "Bucket POST must contain a field named 'key'."),
        ({"key": ""}, "a", "InvalidArgument", "User key must have a length greater than 0."),
        ({"key": "${filename}"}, "", "InvalidArgument", "User key must have a length"),
        ({"key": "k" * 1025}, "a", "KeyTooLongError", "Your key is too long"),
        ({"key": "é" * 513}, "a", "KeyTooLongError", "Your key is too long"),
    ],
)
def test_keys_s3_refuses(fields, filename, code, message):
    with pytest.raises(S3Error) as refused:
        post_form.key_of(fields, filename)
    assert (refused.value.code, refused.value.status) == (code, 400)
    assert refused.value.message.startswith(message)


def test_a_field_given_twice_is_refused_but_x_ignore_fields_may_repeat():
    head = read(part("key", "a") + part("KEY", "b") + FILE_HEAD)
    with pytest.raises(S3Error) as refused:
        post_form.field_values(head)
    assert refused.value.code == "InvalidArgument"
    head = read(part("key", "a") + part("X-Ignore-x", "1") + part("x-ignore-X", "2") + FILE_HEAD)
    assert post_form.field_values(head) == {"key": "a", "x-ignore-x": "2"}


# --- the file streaming past ---------------------------------------------------------------

END = f"\r\n--{B}--\r\n".encode()
NEXT = f"\r\n--{B}\r\n".encode()


def stream(tail: FileTail, data: bytes, size: int) -> bytes:
    out = b"".join(tail.feed(piece) for piece in pieces(data, size))
    return out + tail.finish()


@pytest.mark.parametrize("size", [1, 3, 8, 1000, 10**6])
def test_the_file_streams_through_unchanged_and_is_counted(size):
    content = os.urandom(5000) + b"\r\n--" + B[:-1].encode()  # almost a delimiter, twice
    tail = FileTail(B.encode(), (5000, 6000))
    assert stream(tail, content + END, size) == content + END
    assert tail.size == len(content)


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_fields_after_the_file_become_the_epilogue(size):
    after = part("key", "elsewhere")[len(f"--{B}\r\n") :] + f"--{B}--\r\n".encode()
    body = b"content" + NEXT + after
    tail = FileTail(B.encode(), None)
    out = stream(tail, body, size)
    assert out == b"content" + f"\r\n--{B}--".encode() + after
    assert len(out) == len(body)  # two bytes for two: Content-Length stays true
    assert tail.size == 7


@pytest.mark.parametrize("size", [1, 4, 100])
def test_a_file_over_the_range_is_refused_before_its_end_is_sent(size):
    tail = FileTail(B.encode(), (0, 10))
    sent = b""
    with pytest.raises(S3Error) as refused:
        for piece in pieces(b"x" * 64 + END, size):
            sent += tail.feed(piece)
    assert refused.value.code == "EntityTooLarge"
    assert refused.value.extra["MaxSizeAllowed"] == "10"
    assert END[:3] not in sent and len(sent) <= 11


@pytest.mark.parametrize("size", [1, 5, 100])
def test_a_file_under_the_range_is_refused_before_its_delimiter_is_sent(size):
    tail = FileTail(B.encode(), (512, 1000))
    sent = b""
    with pytest.raises(S3Error) as refused:
        for piece in pieces(b"bar" + END, size):
            sent += tail.feed(piece)
    assert refused.value.code == "EntityTooSmall"
    assert refused.value.extra == {"ProposedSize": "3", "MinSizeAllowed": "512"}
    assert sent == b"bar"[: len(sent)]


def test_exact_limits_are_allowed_and_sizes_are_given():
    assert stream(FileTail(B.encode(), (3, 3)), b"bar" + END, 2) == b"bar" + END
    tail = FileTail(B.encode(), (0, 2))
    with pytest.raises(S3Error) as refused:
        stream(tail, b"bar" + END, 100)
    assert refused.value.extra == {"ProposedSize": "3", "MaxSizeAllowed": "2"}


@pytest.mark.parametrize("body", [b"no delimiter at all", b"content" + NEXT[:-2]])
def test_a_file_whose_part_never_ends_is_malformed_and_its_end_never_sent(body):
    tail = FileTail(B.encode(), None)
    sent = b"".join(tail.feed(piece) for piece in pieces(body, 3))
    with pytest.raises(S3Error) as refused:
        tail.finish()
    assert refused.value.code == "MalformedPOSTRequest"
    assert len(sent) < len(body)
