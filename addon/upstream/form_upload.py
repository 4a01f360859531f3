"""A browser form upload's body on its way to the primary: accepted, re-signed, streamed.

The request of a form upload (POST Object) carries no signature; its form does, and nothing is
sent anywhere before it is read. `FormUpload` reads the form's head (its fields and the file
part's headers: small, bounded), has the gateway accept it (`Accept`: the signature and the
policy verified, the user authorised; it returns the policy), and only then gives what the
backend is sent first: the head again, signed for the backend (`signed_head`), then the file's
content as it came. The head's length changes (other keys, another region, a policy re-encoded):
`length_change` is what Content-Length gains, decided before the request's head is sent
(`mitm.policy.HeldHead`, or, for a body read whole, once it is in). The file's content is
counted against the policy's content-length-range while it streams (`post_form.FileTail`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from addon.auth.post_auth import SIGNATURE_FIELDS
from addon.config.settings import Backend
from addon.s3 import post_form, post_policy, sigv4
from addon.s3.post_file import FileTail
from addon.s3.post_form import FormHead, FormReader

# The gateway's verdict on a form: its policy once it may go on (raises S3Error otherwise).
Accept = Callable[["PostedForm"], post_policy.Policy]


class PostedForm:
    """A form as the client sent it, up to its file: its head, the key it writes, and its fields
    by name (lower case) as S3 holds them to the policy: `key` with `${filename}` replaced."""

    def __init__(self, head: FormHead) -> None:
        self.head = head
        sent = post_form.field_values(head)
        self.key = post_form.key_of(sent, head.file.filename or "")
        self.names_file = post_form.FILENAME in sent["key"]
        self.fields = {**sent, "key": self.key}


def signed_head(
    form: PostedForm, policy: post_policy.Policy, backend: Backend, timestamp: str
) -> bytes:
    """The form's head as `backend` gets it: SigV4-signed with its keys in its region, whatever
    the client signed with. The policy keeps every condition but those on the signature's
    fields, which name the backend's, and on `key` when the form's names `${filename}`: the
    backend gets the key that was checked, and cannot work it out differently."""
    credential = f"{backend.access}/{sigv4.credential_scope(timestamp[:8], backend.region)}"
    exact = {
        "x-amz-algorithm": sigv4.ALGORITHM,
        "x-amz-credential": credential,
        "x-amz-date": timestamp,
    }
    dropped = set(SIGNATURE_FIELDS)
    if form.names_file:
        exact["key"] = form.key
        dropped.add("key")
    encoded = post_policy.rewritten(policy, exact, frozenset(dropped))
    signature = sigv4.policy_signature(backend.secret, timestamp[:8], backend.region, encoded)
    added = [*exact.items(), ("policy", encoded), ("x-amz-signature", signature)]
    return form.head.rewritten(dropped, added)


class FormUpload:
    """Feed it the client's body; it returns what `backend` is sent (nothing until the head is
    accepted). Raises S3Error on the first thing S3 would refuse."""

    def __init__(
        self,
        boundary: bytes,
        backend: Backend,
        accept: Accept,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reader = FormReader(boundary)
        self.backend = backend
        self.accept = accept
        self.clock = clock
        self.tail: FileTail | None = None
        self.length_change = 0

    @property
    def head_decided(self) -> bool:
        """Whether what the backend is sent first is known (and so its Content-Length)."""
        return self.tail is not None

    def feed(self, data: bytes) -> bytes:
        if self.tail is not None:
            return self.tail.feed(data)
        head = self.reader.feed(data)
        if head is None:
            return b""
        form = PostedForm(head)
        policy = self.accept(form)
        timestamp = time.strftime(sigv4.TIMESTAMP_FORMAT, time.gmtime(self.clock()))
        first = signed_head(form, policy, self.backend, timestamp)
        self.length_change = len(first) - head.size
        self.tail = FileTail(head.boundary, policy.size_range)
        return first + self.tail.feed(head.rest)

    def finish(self) -> bytes:
        if self.tail is None:
            self.reader.finish()
        assert self.tail is not None
        return self.tail.finish()


class FormPlan:
    """A form upload's body as `retarget.aim` takes it: its request is not signed for the
    backend (the form is), and its head waits for the form's (`holds_head`)."""

    signs_headers = False
    holds_head = True

    def __init__(self, boundary: bytes, accept: Accept) -> None:
        self.boundary = boundary
        self.accept = accept

    def backend_request(
        self, backend: Backend, headers: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], str]:
        return headers, sigv4.UNSIGNED_PAYLOAD

    def transducer(self, backend: Backend, signed: sigv4.Signed | None) -> FormUpload:
        return FormUpload(self.boundary, backend, self.accept)
