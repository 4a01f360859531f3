"""ListObjects answers read element by element, so that the proxy's answer can be compared with
one backend's own answer to the same request (tests/e2e/namespace/test_listing_like_a_backend.py).

An answer is read into what a client gets from it (`Listing`): each top-level element's value,
each Contents' fields, the CommonPrefixes in order, URL-decoded where the server that wrote it
URL-encodes. Which elements are URL-encoded under `encoding-type=url` differs by version and by
server (`Dialect`): AWS's rules are `AWS`; moto and SeaweedFS encode less (`MOTO`, `SEAWEEDFS`).

Keys may hold characters XML 1.0 cannot carry (U+0001): AWS writes them as character references
(`<Key>a&#x19;&#x7;</Key>`, an AWS answer quoted in minio/minio-py#716), moto writes them raw.
Neither parses in a strict parser, so `read` parses leniently: such a character, raw or
referenced, reads as itself, and `Listing.raw_controls` tells which form came.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_plus, urlsplit

from tests.support.raw_http import Request, send
from tests.support.signing import sigv4


@dataclass(frozen=True)
class Dialect:
    """The elements a server URL-encodes when asked `encoding-type=url`, by version (v2 True);
    "Key" is Contents' Key, "CommonPrefixes" their Prefix, other names are top-level elements."""

    encoded: dict[bool, frozenset[str]]


# AWS: ListObjectsV2's EncodingType documentation lists Delimiter, Prefix, Key and StartAfter
# (and CommonPrefixes' Prefix, which are keys' beginnings); botocore's decode_list_object_v2
# decodes exactly these. For ListObjects (v1) botocore's decode_list_object decodes Delimiter,
# Marker, NextMarker, Key and CommonPrefixes, and leaves the top-level Prefix as it came: AWS
# returns it as sent (ceph/s3-tests' test_bucket_list_prefix_unreadable expects "\n" back).
AWS = Dialect(
    {
        False: frozenset({"Delimiter", "Marker", "NextMarker", "Key", "CommonPrefixes"}),
        True: frozenset({"Delimiter", "Prefix", "StartAfter", "Key", "CommonPrefixes"}),
    },
)
# moto 5.2: v1 encodes Key only; v2 encodes Key, Prefix and CommonPrefixes (moto/s3/responses.py).
MOTO = Dialect(
    {False: frozenset({"Key"}), True: frozenset({"Key", "Prefix", "CommonPrefixes"})},
)
# SeaweedFS 4.48: keys and common prefixes only, in both versions (its Prefix, Delimiter,
# Marker and StartAfter come as sent).
SEAWEEDFS = Dialect(
    {False: frozenset({"Key", "CommonPrefixes"}), True: frozenset({"Key", "CommonPrefixes"})},
)

_PLANE = 0xF0000  # a private-use plane: where characters XML 1.0 cannot carry wait to be read
_BAD_RAW = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_REFERENCE = re.compile(r"&#(x[0-9a-fA-F]+|[0-9]+);")
_BACK = {_PLANE + c: c for c in range(0x20)}


def _lenient(text: str) -> str:
    """`text` with the C0 controls XML 1.0 refuses, raw or referenced, moved into the
    private-use plane (TAB, LF and CR are XML's)."""

    def reference(match: re.Match) -> str:
        number = match.group(1)
        code = int(number[1:], 16) if number.startswith("x") else int(number)
        return chr(_PLANE + code) if code < 0x20 and code not in (0x9, 0xA, 0xD) else match[0]

    text = _REFERENCE.sub(reference, text)
    return _BAD_RAW.sub(lambda m: chr(_PLANE + ord(m.group(0))), text)


@dataclass
class Listing:
    """One answer as a client reads it."""

    status: int
    code: str = ""  # the S3 error's Code, "" for a listing
    fields: dict[str, str] = field(default_factory=dict)  # top-level elements, by name
    contents: list[dict[str, str]] = field(default_factory=list)  # Owner as Owner.ID, ...
    prefixes: list[str] = field(default_factory=list)  # CommonPrefixes
    raw_controls: bool = False  # C0 controls (other than TAB, LF, CR) came unescaped
    encoded_as_sent: list[str] = field(default_factory=list)  # URL-encoded values, undecoded

    @property
    def keys(self) -> list[str]:
        return [c["Key"] for c in self.contents]


def read(status: int, body: bytes, dialect: Dialect, v2: bool) -> Listing:
    """`body` as a client reads it, URL-decoding what `dialect` encodes when the answer says it
    is URL-encoded (its EncodingType)."""
    text = body.decode("utf-8")
    root = ET.fromstring(_lenient(text))

    def value(element: ET.Element) -> str:
        return (element.text or "").translate(_BACK)

    local = lambda tag: tag.rpartition("}")[2]  # noqa: E731
    listing = Listing(status, raw_controls=bool(_BAD_RAW.search(text)))
    if local(root.tag) == "Error":
        listing.code = next((value(c) for c in root if local(c.tag) == "Code"), "")
        return listing
    assert local(root.tag) == "ListBucketResult", body[:200]
    for child in root:
        name = local(child.tag)
        if name == "Contents":
            entry = {}
            for part in child:
                if local(part.tag) == "Owner":
                    entry |= {f"Owner.{local(o.tag)}": value(o) for o in part}
                else:
                    entry[local(part.tag)] = value(part)
            listing.contents.append(entry)
        elif name == "CommonPrefixes":
            listing.prefixes += [value(p) for p in child]
        else:
            assert name not in listing.fields, f"{name} twice"
            listing.fields[name] = value(child)
    if listing.fields.get("EncodingType") == "url":
        encoded = dialect.encoded[v2]
        listing.encoded_as_sent = [listing.fields[n] for n in encoded & listing.fields.keys()]
        listing.encoded_as_sent += [e["Key"] for e in listing.contents if "Key" in encoded]
        listing.encoded_as_sent += [p for p in listing.prefixes if "CommonPrefixes" in encoded]
        for name in encoded & listing.fields.keys():
            listing.fields[name] = unquote_plus(listing.fields[name])
        if "Key" in encoded:
            for entry in listing.contents:
                entry["Key"] = unquote_plus(entry["Key"])
        if "CommonPrefixes" in encoded:
            listing.prefixes = [unquote_plus(p) for p in listing.prefixes]
    return listing


def query(pairs: list[tuple[str, str]]) -> str:
    """The query string, each name and value percent-encoded as SigV4 canonicalises them."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def ask(endpoint: str, access: str, secret: str, bucket: str, pairs, dialect: Dialect) -> Listing:
    """GET /bucket?pairs at `endpoint`, signed by botocore with these keys, read as a client."""
    netloc = urlsplit(endpoint).netloc
    request = sigv4(Request("GET", f"/{bucket}", query(pairs), (("Host", netloc),)),
                    access=access, secret=secret)  # fmt: skip
    answer = send(int(netloc.rpartition(":")[2]), request)
    v2 = ("list-type", "2") in pairs
    return read(answer.status, answer.body, dialect, v2)


def differences(expected: Listing, got: Listing, by_presence: frozenset[str]) -> list[str]:
    """What `got` says otherwise than `expected`, element by element. NextContinuationToken is
    opaque: only whether there is one counts; so do Contents' fields in `by_presence`."""
    found = []
    if (got.status, got.code) != (expected.status, expected.code):
        want = f"{expected.status} {expected.code}"
        found.append(f"answer: {got.status} {got.code} instead of {want}")
    for name in sorted(expected.fields.keys() | got.fields.keys()):
        want, have = expected.fields.get(name), got.fields.get(name)
        if name == "NextContinuationToken":
            want, have = want is not None, have is not None
        if want != have:
            found.append(f"{name}: {have!r} instead of {want!r}")
    if got.keys != expected.keys:
        found.append(f"keys: {got.keys!r} instead of {expected.keys!r}")
    else:
        for want_entry, have_entry in zip(expected.contents, got.contents, strict=True):
            for name in sorted(want_entry.keys() | have_entry.keys()):
                want, have = want_entry.get(name), have_entry.get(name)
                if name in by_presence:
                    want, have = want is not None, have is not None
                if want != have:
                    found.append(f"{want_entry['Key']!r} {name}: {have!r} instead of {want!r}")
    if got.prefixes != expected.prefixes:
        found.append(f"CommonPrefixes: {got.prefixes!r} instead of {expected.prefixes!r}")
    return found


def not_aws_form(got: Listing) -> list[str]:
    """How `got` is written otherwise than AWS writes: C0 controls raw (AWS writes character
    references), or an element AWS URL-encodes holding what URL-encoding would have escaped."""
    found = []
    if got.raw_controls:
        found.append("C0 controls written raw, not as character references")
    loose = [v for v in got.encoded_as_sent if not re.fullmatch("[!-~]*", v)]
    if loose:
        found.append(f"not URL-encoded: {loose!r}")
    return found
