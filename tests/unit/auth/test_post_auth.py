"""A browser form's signature and policy, checked against the key table: forms signed by botocore
(`generate_presigned_post`, SigV4 and SigV2) are let in, and each mistake gets S3's answer."""

from __future__ import annotations

import time

import pytest

from addon.auth import post_auth
from addon.auth.checks import Key, KeyTable
from addon.s3.errors import S3Error
from tests.support.post_forms import presigned_post

ROOT = Key("AKIAROOTFORMS0000001", "root-secret-for-form-tests")
USER = Key("AKIAUSERFORMS0000002", "user-secret-for-form-tests")
KEYS = KeyTable([ROOT, USER])
BUCKET, REGION = "uploads", "us-east-1"
CONDITIONS = [{"acl": "private"}, ["content-length-range", 0, 100]]


def form(key: Key = ROOT, sigv2: bool = False, **changes: str | None) -> dict[str, str]:
    """The fields botocore signs for `key` (names in lower case, as the gateway gives them),
    with `changes` made afterwards (None removes a field)."""
    made = presigned_post(
        "http://127.0.0.1:1",
        BUCKET,
        "k/${filename}",
        fields={"acl": "private"},
        conditions=CONDITIONS,
        sigv2=sigv2,
        access=key.access,
        secret=key.secret,
    )
    fields = {name.lower(): value for name, value in made["fields"].items()}
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def verify(fields: dict[str, str], bucket: str = BUCKET, now: float | None = None):
    return post_auth.verify(KEYS, REGION, time.time() if now is None else now, fields, bucket)


def refusal(fields: dict[str, str], **kwargs) -> S3Error:
    with pytest.raises(S3Error) as refused:
        verify(fields, **kwargs)
    return refused.value


@pytest.mark.parametrize("sigv2", [False, True], ids=["sigv4", "sigv2"])
@pytest.mark.parametrize("key", [ROOT, USER], ids=["root", "user"])
def test_forms_botocore_signs_are_let_in_as_their_signer(key, sigv2):
    verified, policy = verify(form(key, sigv2))
    assert verified.access == key.access
    assert policy.size_range == (0, 100)


def test_the_signature_fields_names_are_case_insensitive():
    fields = form()
    # the gateway gives the fields with lower-case names, whatever the form used
    assert {"x-amz-signature", "x-amz-credential", "policy"} <= set(fields)
    assert verify(fields)[0].access == ROOT.access


def mismatch() -> tuple[str, str]:
    return ("SignatureDoesNotMatch", ROOT.access)


@pytest.mark.parametrize(
    "changes, code, message",
    [
        # a forged signature, a policy changed after signing, a SigV2 one over another policy
        ({"x_amz_signature": "0" * 64}, "SignatureDoesNotMatch", None),
        ({"x_amz_signature": ""}, "SignatureDoesNotMatch", None),
        ({"policy": "e30="}, "SignatureDoesNotMatch", None),
        ({"policy": "é"}, "SignatureDoesNotMatch", None),
        # the credential's scope, as for a presigned URL
        (
            {"x_amz_credential": f"{ROOT.access}/20300101/us-east-1/s3/aws4_request"},
            "AuthorizationQueryParametersError",
            "Error parsing the X-Amz-Credential parameter; Invalid credential date. Date is not "
            "the same as X-Amz-Date.",
        ),
        (
            {"x_amz_algorithm": "AWS4-HMAC-SHA1"},
            "AuthorizationQueryParametersError",
            'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
        ),
        ({"x_amz_algorithm": "AWS4-ECDSA-P256-SHA256"}, "NotImplemented", None),
        ({"x_amz_date": "2024-05-06T07:08:09Z"}, "AuthorizationQueryParametersError", None),
        ({"x_amz_credential": "AKIA/x"}, "AuthorizationQueryParametersError", None),
        # a missing field, named as S3 names it
        ({"policy": None}, "InvalidArgument", "Bucket POST must contain a field named 'policy'."),
        (
            {"x_amz_signature": None},
            "InvalidArgument",
            "Bucket POST must contain a field named 'X-Amz-Signature'.",
        ),
        (
            {"x_amz_credential": None},
            "InvalidArgument",
            "Bucket POST must contain a field named 'X-Amz-Credential'.",
        ),
        # no signature at all: the proxy lets nobody in unsigned
        (
            {
                "x_amz_signature": None,
                "x_amz_credential": None,
                "x_amz_date": None,
                "x_amz_algorithm": None,
            },
            "AccessDenied",
            "Access Denied",
        ),
    ],
)
def test_sigv4_forms_refused(changes, code, message):
    error = refusal(form(**changes))
    assert error.code == code
    if message is not None:
        assert error.message.startswith(message)
    if code == "SignatureDoesNotMatch":
        assert (error.status, error.extra) == (403, {"AWSAccessKeyId": ROOT.access})


def test_a_form_for_another_region_is_refused_naming_the_proxys():
    fields = form()
    fields["x-amz-credential"] = fields["x-amz-credential"].replace("us-east-1", "eu-west-1")
    error = refusal(fields)
    assert (error.code, error.extra) == ("AuthorizationQueryParametersError", {"Region": REGION})


def test_a_key_the_proxy_does_not_know_is_refused():
    stranger = Key("AKIASTRANGER00000003", "whatever")
    for sigv2 in (False, True):
        error = refusal(form(stranger, sigv2))
        assert (error.code, error.status, error.extra) == (
            "InvalidAccessKeyId",
            403,
            {"AWSAccessKeyId": stranger.access},
        )


def test_a_sigv4_form_signed_with_another_secret_is_refused():
    impostor = Key(ROOT.access, "not-the-root-secret")
    assert refusal(form(impostor)).code == "SignatureDoesNotMatch"
    assert refusal(form(impostor, sigv2=True)).code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "changes, code, message",
    [
        ({"signature": "AAAA"}, "SignatureDoesNotMatch", None),
        (
            {"signature": None},
            "InvalidArgument",
            "Bucket POST must contain a field named 'Signature'.  If it is specified, please "
            "check the order of the fields.",
        ),
        (
            {"awsaccesskeyid": None},
            "InvalidArgument",
            "Bucket POST must contain a field named 'AWSAccessKeyId'.",
        ),
        ({"policy": None}, "InvalidArgument", "Bucket POST must contain a field named 'policy'."),
    ],
)
def test_sigv2_forms_refused(changes, code, message):
    error = refusal(form(sigv2=True, **changes))
    assert error.code == code
    if message is not None:
        assert error.message.startswith(message)
        assert error.extra["ArgumentValue"] == ""


def test_the_policy_is_held_to_the_form_once_the_signature_is():
    error = refusal(form(acl="public-read"))
    assert (error.code, error.message) == (
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["eq", "$acl", "private"]',
    )
    assert refusal(form(), bucket="another").message.endswith('["eq", "$bucket", "uploads"]')
    error = refusal(form(x_amz_meta_note="not in the policy"))
    assert error.message == "Invalid according to Policy: Extra input fields: x-amz-meta-note"


def test_an_expired_policy_is_refused_by_the_same_clock():
    assert verify(form(), now=time.time() + 590)
    error = refusal(form(), now=time.time() + 620)
    assert (error.code, error.message) == (
        "AccessDenied",
        "Invalid according to Policy: Policy expired.",
    )
