"""A listing through the proxy answers what one backend answers to the same request, element by
element (tests/support/listing_answers.py reads both).

Three servers of one kind (moto, then SeaweedFS): `reference` holds every key; the proxy in front
of it alone (`solo`), and the proxy in front of the two others, which split the keys between them
with some on both (`pair`: a merged listing), are asked exactly what `reference` is asked
directly: ListObjects v1 and v2, with and without `encoding-type=url`, for empty, zero, maximal
and odd inputs. The requests are raw and signed by botocore (a boto3 client would add
encoding-type=url itself, and decode); pages are followed to the end, each side by its own
NextMarker (or last key) or continuation token.

Every answer of the proxy is also written as AWS writes it (`not_aws_form`): C0 controls as
character references, and what it URL-encodes holding nothing URL-encoding would escape.

What may differ: the continuation token's value (opaque: whether there is one counts, and the
pages it leads to must list what the reference's next pages list), and in `pair` what belongs
to the copy a backend holds: LastModified, and on SeaweedFS the Owner (it names the server).

Where the reference deviates from AWS, the expectation is AWS's documented behaviour (`expected`):
- moto's ListObjects (v1) cuts its pages on keys alone (its CommonPrefixes ignore Marker and
  MaxKeys) and answers an opaque NextMarker: AWS counts keys and prefixes together against
  MaxKeys, and NextMarker is the page's last name, only with a delimiter (ListObjects' NextMarker
  documentation). The page is taken from moto's ListObjectsV2 (start-after the marker) instead;
  its Contents carry ChecksumAlgorithm, which moto's v1 leaves out (AWS's Object has it).
- moto's v1 leaves out Marker, and Prefix when not asked; AWS echoes them, empty when not asked
  (`<Marker/>` in the listing example of AWS's developer guide; SeaweedFS does the same).
- moto and SeaweedFS list more than 1,000 entries for max-keys=1001: AWS returns "up to 1,000
  key names" (ListObjectsV2's MaxKeys documentation); they are asked for 1,000.
- moto's v2 echoes neither ContinuationToken nor, once a token is sent, StartAfter: AWS echoes
  both when they were sent (ListObjectsV2's documentation of each). moto refuses an empty
  continuation-token; S3 takes it for none and echoes it (ceph/s3-tests'
  test_bucket_listv2_continuationtoken_empty, which SeaweedFS passes): moto is asked without it.
- SeaweedFS's v1 writes NextMarker without a delimiter (AWS: only with one).
- Not URL-encoding, moto writes a CR raw (XML reads it as LF) and SeaweedFS writes C0 controls
  (U+0001) as U+FFFD: the names expected are those each gives for the same request URL-encoded,
  NextMarker the page's last of them, and Marker the one sent (SeaweedFS writes U+FFFD there
  whether URL-encoding or not).
- SeaweedFS lists a common prefix that is the delimiter itself (key "x-y", delimiter "x") before
  the others: out of S3's order, which the proxy refuses to merge (503, by design); that case is
  skipped on SeaweedFS, and "delimiter space" takes a delimiter other than / there.
"""

from __future__ import annotations

import copy
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import pytest

from addon.local.servers import S3Server
from tests.support.listing_answers import (
    AWS,
    MOTO,
    SEAWEEDFS,
    Listing,
    ask,
    differences,
    not_aws_form,
)
from tests.support.proxy import Proxy, write_config
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET

pytestmark = pytest.mark.e2e

KEYS = ["a b", "a+b", "amp&<", "b%41", "d/1", "d/2/3", "e\tf", "g\x01h", "h\rj", "q?x", "sp "]
KEYS += ["x-y", "z~", "é", "日本/語", "😀"]
ONLY_SEAWEEDFS = ["k\nl"]  # moto's server answers 404 to a key holding a line feed
FILLER = [f"f/{i:04d}" for i in range(1000)]  # in the large bucket: more keys than a page holds


@dataclass(frozen=True)
class Case:
    name: str
    pairs: tuple[tuple[str, str], ...]  # "start" is marker (v1) or start-after (v2)
    pages: int = 40  # followed at most
    large: bool = False  # in the bucket of more keys than a page holds


CASES = [
    Case("defaults", ()),
    Case("defaults over a page", (), large=True),
    Case("max-keys 0", (("max-keys", "0"),)),
    Case("max-keys 1", (("max-keys", "1"),), pages=4),
    Case("max-keys 1000", (("max-keys", "1000"),), large=True),
    Case("max-keys 1001", (("max-keys", "1001"),), large=True),
    Case("delimiter / over a page", (("delimiter", "/"),), large=True),
    Case("empty prefix", (("prefix", ""),)),
    Case("prefix", (("prefix", "d/"),)),
    Case("prefix LF", (("prefix", "\n"),)),
    Case("prefix non-ASCII", (("prefix", "é"),)),
    Case("delimiter /", (("delimiter", "/"),)),
    Case("delimiter x", (("delimiter", "x"),)),
    Case("delimiter space", (("delimiter", " "),)),
    Case("delimiter TAB", (("delimiter", "\t"),)),
    Case("delimiter and prefix", (("delimiter", "/"), ("prefix", "d/"))),
    Case("one name a page", (("delimiter", "/"), ("max-keys", "1"))),
    Case("three a page after b", (("delimiter", "/"), ("max-keys", "3"), ("start", "b"))),
    Case("start past the end", (("start", "\U0010ffff"),)),
    Case("start LF", (("start", "\n"),)),
    Case("start inside a prefix", (("delimiter", "/"), ("start", "d/1"))),
    Case("start at a prefix", (("delimiter", "/"), ("start", "d/"))),
    Case("fetch-owner", (("fetch-owner", "true"),)),
    Case("empty continuation-token", (("continuation-token", ""),)),
]


@dataclass(frozen=True)
class Setup:
    kind: str
    buckets: dict[bool, str]  # large (more keys than a page holds) or not -> its name
    reference: S3Server
    solo: Proxy
    pair: Proxy
    answers: dict = field(default_factory=dict)  # the reference's, by request: it does not change
    large: bool = False

    @property
    def bucket(self) -> str:
        return self.buckets[self.large]

    def ask_reference(self, pairs) -> Listing:
        asked = (self.bucket, tuple(pairs))
        if asked not in self.answers:
            dialect = MOTO if self.kind == "moto" else SEAWEEDFS
            server = self.reference
            keys = (server.access, server.secret)
            self.answers[asked] = ask(server.endpoint, *keys, self.bucket, pairs, dialect)
        return copy.deepcopy(self.answers[asked])


@pytest.fixture(scope="module", params=["moto", "seaweedfs"])
def setup(request, run_proxy, tmp_path_factory) -> Setup:
    kind = request.param
    primary, secondary, reference = request.getfixturevalue(f"{kind}_servers")
    small = KEYS + (ONLY_SEAWEEDFS if kind == "seaweedfs" else [])
    buckets = {large: f"t-like-{random.randrange(10**9)}" for large in (False, True)}
    puts = []
    for large, keys in ((False, small), (True, small + FILLER)):
        puts += [(reference, buckets[large], key) for key in keys]
        puts += [
            (server, buckets[large], key)
            for i, key in enumerate(keys)
            for server in _holders(i, primary, secondary)
        ]
        for server in (primary, secondary, reference):
            server.client().create_bucket(Bucket=buckets[large])
    with ThreadPoolExecutor(8) as pool:
        # The same bytes everywhere: the copy a merged listing shows has the reference's ETag.
        list(pool.map(lambda p: p[0].client().put_object(Bucket=p[1], Key=p[2], Body=b"x"), puts))
    configs = tmp_path_factory.mktemp("like-a-backend")
    solo = run_proxy(write_config(configs / "solo.json", [reference]))
    pair = run_proxy(write_config(configs / "pair.json", [primary, secondary]))
    return Setup(kind, buckets, reference, solo, pair)


def _holders(index: int, primary: S3Server, secondary: S3Server) -> list[S3Server]:
    """Every third key on the primary alone, the fallback alone, both."""
    return [[primary], [secondary], [primary, secondary]][index % 3]


def request_pairs(v2: bool, encoded: bool, case: Case) -> list[tuple[str, str]]:
    pairs = [("list-type", "2")] if v2 else []
    pairs += [("encoding-type", "url")] if encoded else []
    start = "start-after" if v2 else "marker"
    return pairs + [(start if name == "start" else name, value) for name, value in case.pairs]


def expected(setup: Setup, pairs, proxy_token: str | None, token: str | None) -> Listing:
    """The reference's answer to `pairs` (and its own continuation `token`), where it deviates
    from AWS made what AWS documents (the module's docstring)."""
    query = dict(pairs)
    v2 = "list-type" in query
    asked = [*pairs, ("continuation-token", token)] if token else list(pairs)
    if int(query.get("max-keys", 1000)) > 1000:
        asked = [(k, "1000" if k == "max-keys" else v) for k, v in asked]
    if setup.kind == "moto" and query.get("continuation-token") == "":
        asked = [p for p in asked if p != ("continuation-token", "")]
    listing = _reference(setup, asked)
    if listing.status != 200:
        return listing
    if "encoding-type" not in query:
        exact = _reference(setup, [*asked, ("encoding-type", "url")])
        for entry, key in zip(listing.contents, exact.keys, strict=True):
            entry["Key"] = key
        listing.prefixes = exact.prefixes
    if "max-keys" in query:
        listing.fields["MaxKeys"] = query["max-keys"]
    if not v2:
        listing.fields["Marker"] = query.get("marker", "")
        if not query.get("delimiter"):
            listing.fields.pop("NextMarker", None)
        if "NextMarker" in listing.fields:
            listing.fields["NextMarker"] = max(listing.keys + listing.prefixes)
    else:
        listing.fields.pop("ContinuationToken", None)
        sent = proxy_token if proxy_token is not None else query.get("continuation-token")
        if sent is not None:
            listing.fields["ContinuationToken"] = sent
            if "start-after" in query:
                listing.fields.setdefault("StartAfter", query["start-after"])
    return listing


def _reference(setup: Setup, asked) -> Listing:
    if setup.kind == "moto" and "list-type" not in dict(asked):
        return _v1_from_v2(setup, asked)
    return setup.ask_reference(asked)


def _v1_from_v2(setup: Setup, asked) -> Listing:
    """moto's ListObjects envelope (Name, Prefix, Marker, MaxKeys, Delimiter, EncodingType),
    with the page its ListObjectsV2 lists after the marker."""
    envelope = setup.ask_reference(asked)
    if envelope.status != 200:
        return envelope
    as_v2 = [("list-type", "2"), ("fetch-owner", "true")]
    as_v2 += [("start-after" if k == "marker" else k, v) for k, v in asked]
    page = setup.ask_reference(as_v2)
    fields = {k: v for k, v in envelope.fields.items() if k not in ("NextMarker", "IsTruncated")}
    fields = {"Prefix": ""} | fields | {"Marker": dict(asked).get("marker", "")}
    fields["IsTruncated"] = page.fields["IsTruncated"]
    if page.fields["IsTruncated"] == "true" and dict(asked).get("delimiter"):
        fields["NextMarker"] = max(page.keys + page.prefixes)
    return Listing(200, fields=fields, contents=page.contents, prefixes=page.prefixes)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "url"])
@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("through", ["solo", "pair"])
def test_a_listing_through_the_proxy_is_the_backends(setup, through, v2, encoded, case):
    if setup.kind == "seaweedfs" and case.name == "delimiter x":
        pytest.skip("SeaweedFS lists the common prefix 'x' (of 'x-y') before 'q?x'")
    setup = replace(setup, large=case.large)
    proxy = setup.solo if through == "solo" else setup.pair
    by_presence = frozenset()
    if through == "pair":
        owner = {"Owner.ID", "Owner.DisplayName"} if setup.kind == "seaweedfs" else set()
        by_presence = frozenset({"LastModified", *owner})
    pairs = request_pairs(v2, encoded, case)
    proxy_token = token = None
    for page in range(case.pages):
        sent = [*pairs, ("continuation-token", proxy_token)] if proxy_token else pairs
        got = ask(proxy.endpoint, ROOT_ACCESS, ROOT_SECRET, setup.bucket, sent, AWS)
        want = expected(setup, pairs, proxy_token, token)
        problems = differences(want, got, by_presence) + not_aws_form(got)
        assert not problems, f"page {page + 1}:\n" + "\n".join(problems)
        if got.fields.get("IsTruncated") != "true":
            return
        if v2:
            proxy_token = got.fields["NextContinuationToken"]
            token = want.fields["NextContinuationToken"]
        else:
            marker = got.fields.get("NextMarker") or got.keys[-1]  # botocore's paginator's rule
            pairs = [p for p in pairs if p[0] != "marker"] + [("marker", marker)]
    assert case.pages < 40, "more pages than any case has"
