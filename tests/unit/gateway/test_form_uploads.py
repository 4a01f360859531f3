"""Browser form uploads through the addon's hooks (no network): a form is forwarded to nobody
before its form is accepted; accepted, the primary gets it signed with its own keys; the user's
rights, two signatures, a forged one, and what the write sets off, decided as for a PutObject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tutils

from addon.mitm.policy import AbortUpload
from addon.namespace.adoption import AdoptBucket
from addon.s3 import post_form
from addon.upstream import uploads
from addon.upstream.retarget import SMALL_BODY
from tests.support.post_forms import encode, presigned_post
from tests.unit import test_multi
from tests.unit.test_multi import PROXY_HOST, exchange, refusal, reverse_flow, run, users_file

config, tctx = test_multi.config, test_multi.tctx  # the hooks' fixtures

CONDITIONS = [["starts-with", "$Content-Type", ""], ["content-length-range", 0, 10**7]]


def form_flow(
    content: bytes,
    access: str = "ROOT",
    secret: str = "root-secret",
    headers: tuple[tuple[str, str], ...] = (),
    **changes: str,
) -> tuple[http.HTTPFlow, bytes]:
    """A form botocore signs for the proxy, as a browser posts it; and its body."""
    made = presigned_post(
        f"http://{PROXY_HOST}",
        "bkt",
        "in/${filename}",
        fields={"Content-Type": "text/plain"},
        conditions=CONDITIONS,
        access=access,
        secret=secret,
    )
    content_type, body = encode({**made["fields"], **changes}, ("notes.txt", content))
    fields = [
        (b"Host", PROXY_HOST.encode()),
        (b"Content-Type", content_type.encode()),
        (b"Content-Length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers),
    ]
    request = tutils.treq(method=b"POST", path=b"/bkt", headers=http.Headers(fields), content=body)
    return reverse_flow(request), body


def backend_fields(body: bytes, content_type: str) -> dict[str, str]:
    head = post_form.FormReader(post_form.boundary_of(content_type)).feed(body)
    assert head is not None
    return post_form.field_values(head)


def test_a_small_form_is_read_whole_and_goes_to_the_primary_signed_with_its_keys(tctx):
    _, addon = tctx
    flow, body = form_flow(b"hello")
    run(addon.requestheaders, flow)
    assert flow.request.stream is False  # small: read whole, then checked
    assert "authorization" not in flow.request.headers  # the form is signed, not the request
    assert (flow.request.host, flow.request.path) == ("10.0.0.1", "/bkt")

    run(addon.request, flow)
    assert flow.response is None
    sent = flow.request.raw_content
    assert flow.request.headers["content-length"] == str(len(sent)) and sent != body
    fields = backend_fields(sent, flow.request.headers["content-type"])
    assert fields["x-amz-credential"].startswith("AKHOT/")
    assert fields["key"] == "in/notes.txt"
    assert sent.endswith(b"hello" + body[body.rindex(b"\r\n--") :])


def test_a_large_form_waits_for_its_head_and_its_length_is_known_before_it_is_sent(tctx):
    _, addon = tctx
    flow, body = form_flow(b"x" * SMALL_BODY)
    run(addon.requestheaders, flow)
    assert callable(flow.request.stream)
    held = exchange(flow).held_head(flow)
    assert isinstance(held, uploads.HeldHead)
    assert held.feed(body[:40]) is None  # still reading the form's fields
    first = held.feed(body[40:6000])
    assert first is not None
    length = int(flow.request.headers["content-length"])
    rest = b"".join(flow.request.stream(body[6000:])) + b"".join(flow.request.stream(b""))
    assert length == len(b"".join(first) + rest)
    assert b"".join(first).count(b"AKHOT/") == 1


def test_a_forged_form_is_refused_before_anything_is_sent(tctx):
    _, addon = tctx
    flow, _ = form_flow(b"hello", secret="guess")
    run(addon.requestheaders, flow)
    run(addon.request, flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in flow.response.content
    assert b"<Resource>/bkt</Resource>" in flow.response.content

    large, body = form_flow(b"x" * SMALL_BODY, secret="guess")
    run(addon.requestheaders, large)
    with pytest.raises(AbortUpload) as aborted:
        exchange(large).held_head(large).feed(body)
    assert aborted.value.response.status_code == 403


def test_a_form_signed_twice_is_refused_at_its_head(tctx):
    _, addon = tctx
    flow, _ = form_flow(b"x", headers=(("Authorization", "AWS4-HMAC-SHA256 Credential=x"),))
    run(addon.requestheaders, flow)
    assert b"<Code>InvalidArgument</Code>" in refusal(flow).content


def test_a_readonly_user_may_not_post_a_form(tctx, tmp_path: Path):
    tctx, addon = tctx
    users = users_file(tmp_path / "users.json", "readonly")
    tctx.configure(addon, s3multi_users=str(users))
    flow, _ = form_flow(b"x", access="READER", secret="reader-secret-never-logged")
    run(addon.requestheaders, flow)
    run(addon.request, flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert b"READER (readonly) may not write bucket bkt." in flow.response.content


def test_an_accepted_form_sets_off_what_a_put_does_with_its_key(tctx, config: Path):
    """Its rules are applied once the form is read, with the form's key: a write, so no
    tombstone step (a write never touches tombstones), and the bucket adoption of any write."""
    tctx, addon = tctx
    document = json.loads(config.read_text())
    document["backends"][0]["metaBucket"] = "meta"
    config.write_text(json.dumps(document))
    tctx.configure(addon, s3multi_config=str(config))
    put = test_multi.signed_flow("PUT", "/bkt/in/notes.txt", body=b"x")
    run(addon.requestheaders, put)
    flow, _ = form_flow(b"x")
    run(addon.requestheaders, flow)
    assert exchange(flow).after == []  # the key is the form's: unknown yet
    run(addon.request, flow)
    kinds = [type(step) for step in exchange(flow).after]
    assert kinds == [type(step) for step in exchange(put).after] == [AdoptBucket]
