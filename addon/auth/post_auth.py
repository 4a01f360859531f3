"""Browser form uploads (POST Object): the form's signature and policy, checked like any request.

A form's request carries no signature: its fields do. The client signs the base64 policy
document, with SigV4 (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `x-amz-signature`) or
the SigV2 of older upload libraries (`AWSAccessKeyId`, `signature`), with the root keys or a
gateway user's. The same key table as every request, the same algorithm and credential-scope
checks as a presigned URL (S3 reports a form's mistakes under the same codes), then the policy:
its expiration by the same clock, every condition against the form (`addon.s3.post_policy`).
There is no clock-skew check on `x-amz-date`: the policy's expiration is what limits a form.
A form without a signature is refused: the proxy lets nobody in unsigned.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from addon.auth import checks as auth_checks
from addon.auth import sigv2
from addon.auth.checks import Key, KeyTable, Verified
from addon.s3 import post_policy, sigv4
from addon.s3.errors import S3Error
from addon.s3.post_form import missing_field

SIGV4 = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")
SIGV2 = ("awsaccesskeyid", "signature")
# Every field that carries a form's signature: none of them goes to a backend as it came.
SIGNATURE_FIELDS = frozenset({*SIGV4, *SIGV2, "policy", "x-amz-security-token"})
# The names S3 gives them when one is missing.
_SHOWN = {
    "x-amz-algorithm": "X-Amz-Algorithm",
    "x-amz-credential": "X-Amz-Credential",
    "x-amz-date": "X-Amz-Date",
    "x-amz-signature": "X-Amz-Signature",
    "awsaccesskeyid": "AWSAccessKeyId",
    "signature": "Signature",
    "policy": "policy",
}


def verify(
    keys: KeyTable[Key], region: str, now: float, fields: Mapping[str, str], bucket: str
) -> tuple[Verified, post_policy.Policy]:
    """Who signed the form (`fields`: names in lower case) posted to `bucket`, and its policy,
    once both hold; raises the S3 error otherwise."""
    if any(name in fields for name in SIGV4):
        access = _sigv4(keys, region, fields)
    elif any(name in fields for name in SIGV2):
        access = _sigv2(keys, fields)
    else:
        raise S3Error("AccessDenied")
    policy = post_policy.parse(fields["policy"])
    post_policy.check(policy, fields, bucket, now)
    return Verified((), sigv4.UNSIGNED_PAYLOAD, access=access), policy


def _require(fields: Mapping[str, str], names: tuple[str, ...]) -> None:
    for name in (*names, "policy"):
        if name not in fields:
            raise missing_field(_SHOWN[name])


def _sigv4(keys: KeyTable[Key], region: str, fields: Mapping[str, str]) -> str:
    _require(fields, SIGV4)
    auth_checks.query_algorithm(fields["x-amz-algorithm"])
    timestamp = fields["x-amz-date"]
    auth_checks.query_timestamp(timestamp)
    access, date, *_ = auth_checks.credential_scope(
        auth_checks.QUERY, fields["x-amz-credential"], timestamp, region
    )
    secret = keys.find(access).secret
    policy = _text(fields["policy"], access)
    expected = sigv4.policy_signature(secret, date, region, policy)
    _compare(expected, fields["x-amz-signature"], access)
    return access


def _sigv2(keys: KeyTable[Key], fields: Mapping[str, str]) -> str:
    _require(fields, SIGV2)
    access = fields["awsaccesskeyid"]
    secret = keys.find(access).secret
    expected = sigv2.policy_signature(secret, _text(fields["policy"], access))
    _compare(expected, fields["signature"], access)
    return access


def _text(policy: str, access: str) -> str:
    """The policy as signed: base64 is ASCII, and anything else cannot be what was signed."""
    if not policy.isascii():
        raise auth_checks.signature_mismatch(access)
    return policy


def _compare(expected: str, given: str, access: str) -> None:
    if not hmac.compare_digest(expected.encode(), auth_checks.raw(given)):
        raise auth_checks.signature_mismatch(access)
