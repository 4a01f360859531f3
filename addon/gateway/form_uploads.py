"""Browser form uploads (POST Object) at the gateway: told apart at the request head, let through
once the form is read.

`POST /bucket` with a multipart/form-data body is S3's browser upload: its request carries no
signature, its form does. The router forwards it to nobody before the form's head is in: the
request's body is a `form_upload.FormPlan`, which asks `FormGate` once it has read the form's
fields. The gate verifies the form's signature and policy against the key table
(`addon.auth.post_auth`), authorises the user (a write on the bucket, as for a PutObject), and
only then attaches what the write sets off (`after_steps.RULES`, with the key the form names:
unknown at the request head). Until the gate has said yes, nothing is sent anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from addon.auth import post_auth, rights
from addon.auth.checks import Verified
from addon.auth.client_auth import PRESIGN_KEYS
from addon.auth.sigv2 import QUERY_KEYS
from addon.gateway import after_steps
from addon.gateway.after_steps import Asked
from addon.s3 import post_form, post_policy, sigv4
from addon.s3.errors import S3Error
from addon.s3.operations import Scope, Target, subresource
from addon.upstream.exchange import Exchange
from addon.upstream.form_upload import PostedForm

if TYPE_CHECKING:
    from addon.gateway.router import Router

# What a form's request is forwarded with: its form is what is signed (see FormGate).
UNSIGNED = Verified((), sigv4.UNSIGNED_PAYLOAD)
_AUTH_QUERY = frozenset({*PRESIGN_KEYS, *QUERY_KEYS})


def form_boundary(
    method: str, target: Target, query: Iterable[tuple[str, str]], headers
) -> bytes | None:
    """The boundary of a browser form upload's body, or None when the request is not one.

    A form carries its own signature: one that also comes signed by header or query is refused,
    as S3 refuses two signatures on one request."""
    pairs = list(query)
    if method != "POST" or target.scope is not Scope.BUCKET or subresource(k for k, _ in pairs):
        return None
    content_type = headers.get("content-type") or ""
    if post_form.media_type(content_type)[0] != "multipart/form-data":
        return None
    if headers.get("authorization") is not None or any(k in _AUTH_QUERY for k, _ in pairs):
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; a browser form carries its own signature",
            extra={"ArgumentName": "Authorization"},
        )
    return post_form.boundary_of(content_type)


@dataclass
class FormGate:
    """What a form upload's FormPlan asks once the form's head is read: may it go on?"""

    router: Router
    asked: Asked  # the request, classified; its key is the form's
    exchange: Exchange | None = None

    def __call__(self, form: PostedForm) -> post_policy.Policy:
        """The form's policy, once the form is verified and its user may write to the bucket;
        raises the S3 error otherwise."""
        auth, bucket = self.router.auth, self.asked.bucket
        assert bucket is not None and self.exchange is not None
        verified, policy = post_auth.verify(
            auth.keys, auth.region, auth.clock(), form.fields, bucket
        )
        user = self.router.users.find(verified.access)
        rights.check(user, self.asked.operation, bucket)
        after_steps.attach(self.router.wiring, replace(self.asked, key=form.key), self.exchange)
        return policy
