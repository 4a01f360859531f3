"""Browser form uploads (POST Object) end to end: botocore's `generate_presigned_post` signs a
form for the proxy's root keys, `requests` posts it as a web page would, and each backend is
looked at directly to see where the bytes went.

The proxy verifies the form and re-signs it for the primary (its keys, its region), so every
upload that lands was re-signed. moto in auth mode takes no form at all, even one signed with
its own keys (it authenticates by the Authorization header alone, and answers 500): uploads
that should land are skipped there, saying so; the refusals, the proxy's own, run on both.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
from botocore.exceptions import ClientError

from addon.local.servers import S3Server
from tests.support.clients import s3_client
from tests.support.direct import client as direct
from tests.support.direct import has_bucket, has_object, put_direct
from tests.support.post_forms import encode, post, presigned_post
from tests.support.proxy import peak_rss, write_config
from tests.support.raw_http import Connection, Request
from tests.support.topologies import EACH_PRIMARY

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*EACH_PRIMARY)]

MIB = 1024 * 1024
META = "s3multi-meta"
CONDITIONS = [
    ["starts-with", "$Content-Type", "application/"],
    ["starts-with", "$x-amz-meta-from", ""],
    ["content-length-range", 1, 300 * MIB],
]
FIELDS = {"Content-Type": "application/x-test", "x-amz-meta-from": "a browser"}


@pytest.fixture(scope="module")
def form_proxy(backends, run_proxy, tmp_path_factory):
    """The proxy in front of the three backends, tombstones on (the primary's metaBucket)."""
    path = tmp_path_factory.mktemp("forms") / "c.json"
    config = write_config(path, backends)
    document = json.loads(config.read_text())
    document["backends"][0]["metaBucket"] = META
    config.write_text(json.dumps(document))
    return run_proxy(config)


@functools.cache
def _takes_forms(endpoint: str, access: str, secret: str) -> bool:
    bucket = f"probe-{uuid.uuid4().hex[:10]}"
    s3_client(endpoint, access, secret).create_bucket(Bucket=bucket)
    form = presigned_post(endpoint, bucket, "probe", access=access, secret=secret)
    return post(form["url"], form["fields"], b"probe").status_code == 204


def needs_forms(primary: S3Server) -> None:
    """Skip, saying why, where the primary itself takes no form signed with its own keys."""
    if not _takes_forms(primary.endpoint, primary.access, primary.secret):
        pytest.skip(
            f"{primary.endpoint} takes no form upload even signed with its own keys (moto in "
            "auth mode reads the Authorization header alone and answers 500)"
        )


def form_for(proxy, bucket: str, key: str = "in/${filename}", **kwargs) -> dict:
    kwargs.setdefault("fields", dict(FIELDS))
    kwargs.setdefault("conditions", CONDITIONS)
    return presigned_post(proxy.endpoint, bucket, key, **kwargs)


def nowhere(backends, bucket: str, key: str) -> bool:
    return not any(has_object(server, bucket, key) for server in backends)


@pytest.mark.parametrize("sigv2", [False, True], ids=["sigv4", "sigv2"])
@pytest.mark.parametrize("size", [5, 3 * MIB], ids=["small", "streamed"])
def test_a_form_lands_on_the_primary_only_and_reads_back(form_proxy, backends, bucket, sigv2, size):
    primary, secondary, tertiary = backends
    needs_forms(primary)
    form_proxy.client().create_bucket(Bucket=bucket)
    data = os.urandom(size)
    form = form_for(form_proxy, bucket, sigv2=sigv2)
    assert form["url"] == f"{form_proxy.endpoint}/{bucket}"

    answer = post(form["url"], form["fields"], data, filename="C:\\Users\\me\\photo.bin")
    assert (answer.status_code, answer.content) == (204, b"")

    stored = direct(primary).get_object(Bucket=bucket, Key="in/photo.bin")
    assert stored["Body"].read() == data
    assert (stored["ContentType"], stored["Metadata"]) == (
        "application/x-test",
        {"from": "a browser"},
    )
    assert not has_bucket(secondary, bucket) and not has_bucket(tertiary, bucket)
    got = form_proxy.client().get_object(Bucket=bucket, Key="in/photo.bin")["Body"].read()
    assert got == data
    assert f"PostObject /{bucket} via [primary 204" in form_proxy.log()


def test_the_answer_is_the_primarys_201_or_303(form_proxy, backends, bucket):
    needs_forms(backends[0])
    form_proxy.client().create_bucket(Bucket=bucket)
    form = form_for(
        form_proxy, bucket, "k.txt", conditions=[*CONDITIONS, {"success_action_status": "201"}]
    )
    answer = post(form["url"], {**form["fields"], "success_action_status": "201"}, b"abc")
    assert answer.status_code == 201
    document = {child.tag: child.text for child in ET.fromstring(answer.content)}
    assert (document["Bucket"], document["Key"]) == (bucket, "k.txt")

    redirect = "http://example.com/done"
    condition = {"success_action_redirect": redirect}
    form = form_for(form_proxy, bucket, "r.txt", conditions=[*CONDITIONS, condition])
    fields = {**form["fields"], **condition}
    answer = requests.post(
        form["url"], data=fields, files={"file": ("r.txt", b"abc")}, allow_redirects=False
    )
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith(redirect + "?") and f"bucket={bucket}" in location
    assert "key=r.txt" in location
    assert direct(backends[0]).get_object(Bucket=bucket, Key="r.txt")["Body"].read() == b"abc"


def forged(fields):
    name = "x-amz-signature" if "x-amz-signature" in fields else "signature"
    return {**fields, name: fields[name][::-1]}


POLICY_FAILED = "Invalid according to Policy: Policy Condition failed: "
REFUSALS = {
    # name: (form changes, posted fields changes, content size, status, code, message start)
    "forged": ({}, forged, 5, 403, "SignatureDoesNotMatch", "The request signature"),
    "forged-sigv2": ({"sigv2": True}, forged, 5, 403, "SignatureDoesNotMatch", "The request"),
    "expired": (
        {"expires": -60},
        None,
        5,
        403,
        "AccessDenied",
        "Invalid according to Policy: Policy expired.",
    ),
    "condition": (
        {},
        lambda f: {**f, "Content-Type": "text/html"},
        5,
        403,
        "AccessDenied",
        POLICY_FAILED + '["starts-with", "$Content-Type", "application/"]',
    ),
    "extra-field": (
        {},
        lambda f: {**f, "acl": "public-read"},
        5,
        403,
        "AccessDenied",
        "Invalid according to Policy: Extra input fields: acl",
    ),
    "too-large": (
        {"conditions": [*CONDITIONS[:2], ["content-length-range", 1, 1000]]},
        None,
        1001,
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds",
    ),
    "too-large-streamed": (
        {"conditions": [*CONDITIONS[:2], ["content-length-range", 1, MIB]]},
        None,
        8 * MIB,
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds",
    ),
    "too-small": (
        {"conditions": [*CONDITIONS[:2], ["content-length-range", 512, 1000]]},
        None,
        3,
        400,
        "EntityTooSmall",
        "Your proposed upload is smaller",
    ),
    "no-signature": (
        {"sigv2": True},
        lambda f: {k: v for k, v in f.items() if k != "signature"},
        5,
        400,
        "InvalidArgument",
        "Bucket POST must contain a field named 'Signature'.",
    ),
    "unsigned": (
        {},
        lambda f: {k: v for k, v in f.items() if k in ("key", "Content-Type")},
        5,
        403,
        "AccessDenied",
        "Access Denied",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_form_gets_s3s_answer_and_stores_nothing(form_proxy, backends, bucket, case):
    form_changes, change, size, status, code, message = REFUSALS[case]
    direct(backends[0]).create_bucket(Bucket=bucket)
    form = form_for(form_proxy, bucket, "refused.bin", **form_changes)
    fields = change(form["fields"]) if change else form["fields"]

    answer = post(form["url"], fields, os.urandom(size))
    assert answer.status_code == status, answer.content
    error = {child.tag: child.text for child in ET.fromstring(answer.content)}
    assert error["Code"] == code and error["Message"].startswith(message), error
    assert error["Resource"] == f"/{bucket}"
    assert nowhere(backends, bucket, "refused.bin")


def test_a_form_after_a_delete_leaves_the_tombstone_as_a_put_does(form_proxy, backends, bucket):
    """A write is one request to the primary: the new object is served at once, and what the
    delete hid stays hidden when the key is then deleted on the primary directly."""
    primary, secondary, _ = backends
    needs_forms(primary)
    direct(primary).create_bucket(Bucket=bucket)
    put_direct(secondary, bucket, "k.bin", b"an old copy on the secondary")
    form_proxy.client().delete_object(Bucket=bucket, Key="k.bin")
    assert has_object(primary, META, f"tombstones/{bucket}/k.bin")

    form = form_for(form_proxy, bucket, "k.bin")
    assert post(form["url"], form["fields"], b"new").status_code == 204
    assert has_object(primary, META, f"tombstones/{bucket}/k.bin")
    assert form_proxy.client().get_object(Bucket=bucket, Key="k.bin")["Body"].read() == b"new"
    direct(primary).delete_object(Bucket=bucket, Key="k.bin")
    with pytest.raises(ClientError) as gone:
        form_proxy.client().get_object(Bucket=bucket, Key="k.bin")
    assert gone.value.response["Error"]["Code"] == "NoSuchKey"
    line = next(x for x in form_proxy.log().splitlines() if f"PostObject /{bucket} via" in x)
    assert line.endswith("answered by primary")  # nothing else set off


@pytest.mark.parametrize("size", [5, 3 * MIB], ids=["small", "streamed"])
def test_a_form_to_a_bucket_only_a_fallback_has_is_answered_retry(form_proxy, backends, size):
    """The primary takes the bucket on; the body has gone by, so the client is told to retry
    (503), and the retry lands."""
    primary, secondary, _ = backends
    needs_forms(primary)
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    direct(secondary).create_bucket(Bucket=bucket)
    form = form_for(form_proxy, bucket, "k.bin")
    data = os.urandom(size)
    first = post(form["url"], form["fields"], data)
    assert first.status_code == 503, first.content
    assert b"<Code>ServiceUnavailable</Code>" in first.content
    assert has_bucket(primary, bucket) and not has_object(primary, bucket, "k.bin")
    assert post(form["url"], form["fields"], data).status_code == 204
    assert direct(primary).get_object(Bucket=bucket, Key="k.bin")["Body"].read() == data


@pytest.mark.parametrize("http2", [False, True], ids=["http1-expect-100", "http2-tls"])
def test_curl_posts_a_form(form_proxy, backends, bucket, tmp_path, http2):
    """curl -F, as a shell script uploads: over HTTP/1.1 a body over 1 MiB waits for a
    100 Continue; over TLS curl speaks HTTP/2, whose streamed body holds its head as well."""
    needs_forms(backends[0])
    form_proxy.client().create_bucket(Bucket=bucket)
    data = os.urandom(2 * MIB + 3)
    (tmp_path / "report.pdf").write_bytes(data)
    endpoint = form_proxy.https_endpoint if http2 else form_proxy.endpoint
    form = presigned_post(
        endpoint, bucket, "in/${filename}", fields=dict(FIELDS), conditions=CONDITIONS
    )
    fields = [arg for name, value in form["fields"].items() for arg in ("-F", f"{name}={value}")]
    tls = ["--http2", "--cacert", form_proxy.ca_file] if http2 else []
    done = subprocess.run(
        ["curl", "-sS", "-v", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", *tls,
         *fields, "-F", f"file=@{tmp_path / 'report.pdf'}", form["url"]],
        capture_output=True, timeout=60, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert done.stdout == (b"2 204" if http2 else b"1.1 204"), done.stderr.decode()
    if not http2:
        assert b"Expect: 100-continue" in done.stderr and b"HTTP/1.1 100 Continue" in done.stderr
    stored = direct(backends[0]).get_object(Bucket=bucket, Key="in/report.pdf")
    assert stored["Body"].read() == data


def test_gateway_users_post_forms_with_their_own_keys_and_rights(
    backends, run_proxy, tmp_path, bucket
):
    """A form signed with a user's key is that user's write: it lands in the user's bucket, and
    a readonly user or another bucket is refused before anything is sent."""
    needs_forms(backends[0])
    users = [
        {"access": "poster", "secret": "poster-secret-never-logged", "role": "user",
         "buckets": [bucket]},
        {"access": "looker", "secret": "looker-secret-never-logged", "role": "readonly"},
    ]  # fmt: skip
    (tmp_path / "users.json").write_text(json.dumps({"users": users}))
    proxy = run_proxy(write_config(tmp_path / "c.json", backends, {"users": "users.json"}))
    other = f"{bucket}-other"
    for name in (bucket, other):
        proxy.client().create_bucket(Bucket=name)
    keys = {"poster": "poster-secret-never-logged", "looker": "looker-secret-never-logged"}

    def posted(access: str, to: str, key: str):
        form = form_for(proxy, to, key, access=access, secret=keys[access])
        return post(form["url"], form["fields"], b"from " + access.encode())

    assert posted("poster", bucket, "mine.txt").status_code == 204
    stored = direct(backends[0]).get_object(Bucket=bucket, Key="mine.txt")["Body"].read()
    assert stored == b"from poster"
    for access, to, message in [
        ("looker", bucket, "looker (readonly) may not write bucket"),
        ("poster", other, f"poster (user) may not write bucket {other}."),
    ]:
        answer = posted(access, to, "refused.txt")
        error = {child.tag: child.text for child in ET.fromstring(answer.content)}
        assert (answer.status_code, error["Code"]) == (403, "AccessDenied")
        assert message in error["Message"]
        assert not has_object(backends[0], to, "refused.txt")
    assert not any(secret in proxy.log() for secret in keys.values())


@pytest.mark.topologies("moto")  # answered by the proxy: no backend takes part
def test_a_form_whose_client_stalls_before_its_file_is_answered_in_bounded_time(
    backends, run_proxy, tmp_path, bucket
):
    proxy = run_proxy(write_config(tmp_path / "c.json", backends, {"clientTimeout": 2}))
    direct(backends[0]).create_bucket(Bucket=bucket)
    form = form_for(proxy, bucket)
    content_type, body = encode(form["fields"], ("stalled.bin", b""))
    headers = (
        ("Host", f"127.0.0.1:{proxy.port}"),
        ("Content-Type", content_type),
        ("Content-Length", str(len(body) + 10 * MIB)),  # large: streamed, its head held
    )
    started = time.monotonic()
    with Connection(proxy.port, timeout=30) as connection:
        connection.write(Request("POST", f"/{bucket}", headers=headers).head() + body[:100])
        answer = connection.answer("POST")
    assert answer.status == 400 and answer.error()["Code"] == "RequestTimeout"
    assert time.monotonic() - started < 10
    assert f"PostObject /{bucket} via [primary refused: RequestTimeout" in proxy.log()
    assert not has_object(backends[0], bucket, "in/stalled.bin")


@pytest.mark.slow
def test_a_256_mib_form_streams_through_in_bounded_memory(backends, run_proxy, tmp_path, bucket):
    primary = backends[0]
    needs_forms(primary)
    proxy = run_proxy(write_config(tmp_path / "c.json", backends[:1]))
    proxy.client().create_bucket(Bucket=bucket)
    size, piece = 256 * MIB, os.urandom(MIB)
    form = form_for(proxy, bucket, "big.bin")
    content_type, empty = encode(form["fields"], ("big.bin", b""))
    closing = empty[empty.rindex(b"\r\n--") :]
    head = empty[: -len(closing)]
    request = Request(
        "POST",
        f"/{bucket}",
        headers=(
            ("Host", f"127.0.0.1:{proxy.port}"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(head) + size + len(closing))),
        ),
    )
    sent = hashlib.md5()
    before = proxy.rss_mb()
    with peak_rss(proxy) as peak, Connection(proxy.port, timeout=120) as connection:
        assert connection.write(request.head() + head)
        for _ in range(size // MIB):
            assert connection.write(piece)
            sent.update(piece)
        assert connection.write(closing)
        answer = connection.answer("POST")
    assert answer.status == 204, answer.body
    assert peak[0] - before < 100, f"RSS grew from {before:.0f} MB to {peak[0]:.0f} MB"
    stored = direct(primary).get_object(Bucket=bucket, Key="big.bin")
    assert stored["ContentLength"] == size
    read = hashlib.md5()
    for chunk in stored["Body"].iter_chunks(MIB):
        read.update(chunk)
    assert read.hexdigest() == sent.hexdigest()
