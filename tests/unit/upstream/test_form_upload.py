"""A form upload's body on its way to a backend, fed as mitmproxy feeds it: nothing comes out
before the form is accepted; then a form the backend verifies with its own keys, in its own
region, and the file as it came; Content-Length's change known before any of it is sent."""

from __future__ import annotations

import os
import time

import pytest

from addon.auth import post_auth
from addon.auth.checks import Key, KeyTable
from addon.config.settings import Backend
from addon.s3 import post_form
from addon.s3.errors import S3Error
from addon.s3.post_form import FormReader
from addon.upstream.form_upload import FormUpload, PostedForm
from tests.support.post_forms import encode, presigned_post

ROOT = Key("AKIAROOTUPLOAD000001", "root-secret")
BACKEND = Backend(0, "primary", "BACKENDKEY", "backend-secret", "http://10.0.0.1:9000", "eu-west-3")
BUCKET = "uploads"
CONDITIONS = [["starts-with", "$Content-Type", "text/"], ["content-length-range", 1, 10**6]]


def client_form(key: str = "docs/${filename}", sigv2: bool = False) -> dict[str, str]:
    made = presigned_post(
        "http://127.0.0.1:1",
        BUCKET,
        key,
        fields={"Content-Type": "text/plain"},
        conditions=CONDITIONS,
        sigv2=sigv2,
        access=ROOT.access,
        secret=ROOT.secret,
    )
    return made["fields"]


class Gate:
    """The gateway's part, as the router plays it: verify with the root keys (us-east-1)."""

    def __init__(self) -> None:
        self.forms: list[PostedForm] = []

    def __call__(self, form: PostedForm):
        self.forms.append(form)
        return post_auth.verify(KeyTable([ROOT]), "us-east-1", time.time(), form.fields, BUCKET)[1]


def run(body: bytes, boundary: bytes, size: int) -> tuple[bytes, FormUpload, Gate]:
    gate = Gate()
    upload = FormUpload(boundary, BACKEND, gate)
    out = b""
    for i in range(0, len(body), size):
        piece = upload.feed(body[i : i + size])
        assert piece == b"" or upload.head_decided, "nothing before the form is accepted"
        out += piece
    return out + upload.finish(), upload, gate


def backend_view(out: bytes, boundary: bytes) -> tuple[dict[str, str], post_form.FormHead]:
    head = FormReader(boundary).feed(out)
    assert head is not None
    return post_form.field_values(head), head


@pytest.mark.parametrize("sigv2", [False, True], ids=["sigv4", "sigv2"])
@pytest.mark.parametrize("size", [1, 13, 4096, 10**7])
def test_the_backend_gets_a_form_signed_with_its_keys_and_the_file_unchanged(sigv2, size):
    content = os.urandom(20_000)
    content_type, body = encode(client_form(sigv2=sigv2), ("a/b/notes.txt", content))
    boundary = post_form.boundary_of(content_type)
    out, upload, gate = run(body, boundary, size)

    assert len(out) == len(body) + upload.length_change
    fields, head = backend_view(out, boundary)
    assert out[head.size :] == body[-(len(content) + len(f"\r\n--{boundary.decode()}--\r\n")) :]
    # the backend's own verifier, its keys, its region: the form holds
    verified, policy = post_auth.verify(
        KeyTable([Key(BACKEND.access, BACKEND.secret)]), "eu-west-3", time.time(), fields, BUCKET
    )
    assert verified.access == BACKEND.access
    assert (
        fields["x-amz-credential"].startswith("BACKENDKEY/")
        and "/eu-west-3/s3/" in fields["x-amz-credential"]
    )
    assert not {"awsaccesskeyid", "signature"} & set(fields)
    # the key that was checked is the key the backend writes; the rest as the client sent it
    assert gate.forms[0].key == fields["key"] == "docs/notes.txt"
    assert fields["content-type"] == "text/plain"
    assert policy.size_range == (1, 10**6)


def test_a_key_without_a_file_name_stays_as_sent():
    content_type, body = encode(client_form(key="fixed.txt"), ("x.txt", b"hello"))
    boundary = post_form.boundary_of(content_type)
    out, _, _ = run(body, boundary, 100)
    fields, _ = backend_view(out, boundary)
    assert fields["key"] == "fixed.txt"


def test_a_refused_form_gives_nothing_and_the_file_is_never_read():
    fields = client_form()
    fields["x-amz-signature"] = "0" * 64
    content_type, body = encode(fields, ("x.txt", b"forged"))
    upload = FormUpload(post_form.boundary_of(content_type), BACKEND, Gate())
    with pytest.raises(S3Error) as refused:
        upload.feed(body)
    assert refused.value.code == "SignatureDoesNotMatch"
    assert not upload.head_decided


@pytest.mark.parametrize("size", [1, 1000])
def test_a_file_outside_the_range_is_refused_before_the_backend_has_a_whole_form(size):
    content_type, body = encode(client_form(), ("x.txt", b""))
    boundary = post_form.boundary_of(content_type)
    upload = FormUpload(boundary, BACKEND, Gate())
    sent = b""
    with pytest.raises(S3Error) as refused:
        for i in range(0, len(body), size):
            sent += upload.feed(body[i : i + size])
        upload.finish()
    assert refused.value.code == "EntityTooSmall"
    assert upload.head_decided and b"\r\n--" + boundary + b"--" not in sent  # never closed


def test_a_body_that_ends_before_its_file_is_malformed():
    content_type, body = encode(client_form(), ("x.txt", b"data"))
    upload = FormUpload(post_form.boundary_of(content_type), BACKEND, Gate())
    upload.feed(body[:200])
    with pytest.raises(S3Error) as refused:
        upload.finish()
    assert refused.value.code == "MalformedPOSTRequest"


def test_the_policy_sees_the_key_with_the_file_name_in_place():
    """AWS: a condition on `key` is checked after `${filename}` is replaced."""
    made = presigned_post(
        "http://127.0.0.1:1",
        BUCKET,
        "notes.txt",
        fields={"Content-Type": "text/plain"},
        conditions=[*CONDITIONS, ["starts-with", "$key", "notes"]],
        access=ROOT.access,
        secret=ROOT.secret,
    )["fields"]
    made["key"] = "${filename}"  # as s3-tests sends it: the key is the file's name alone
    content_type, body = encode(made, ("notes.txt", b"data"))
    boundary = post_form.boundary_of(content_type)
    out, _, gate = run(body, boundary, 64)
    assert gate.forms[0].fields["key"] == "notes.txt"
    assert backend_view(out, boundary)[0]["key"] == "notes.txt"
