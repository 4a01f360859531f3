"""S3 XML errors: what the proxy answers when it refuses or cannot serve a request."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from addon.s3.xml import escape

if TYPE_CHECKING:  # imported where used: the commands (check, migrate) never need it
    from mitmproxy import http

# code -> (status, S3's own message); a raise may pass a more specific message.
KNOWN: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "Error parsing the X-Amz-Credential parameter."),
    "BadDigest": (
        400,
        "The Content-MD5 or checksum value you specified did not match what we received.",
    ),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    ),
    "InvalidChunkSizeError": (
        400,
        "Only the last chunk is allowed to have a size less than 8192 bytes",
    ),
    "MalformedTrailerError": (
        400,
        "The request contained trailing data that was not well-formed or did not conform to our "
        "published schema.",
    ),
    "MalformedPOSTRequest": (
        400,
        "The body of your POST request is not well-formed multipart/form-data.",
    ),
    "MaxPostPreDataLengthExceededError": (
        400,
        "Your POST request fields preceding the upload file were too large.",
    ),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "IncorrectNumberOfFilesInPostRequest": (
        400,
        "POST requires exactly one file upload per request.",
    ),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidPolicyDocument": (
        400,
        "The content of the form does not meet the conditions specified in the policy document.",
    ),
    "InvalidRequest": (400, "Invalid Request"),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingSecurityHeader": (400, "Your request was missing a required header."),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented."),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "KeyTooLongError": (400, "Your key is too long"),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold"),
    "RequestHeaderSectionTooLarge": (
        400,
        "Your request header section exceeds the maximum allowed size.",
    ),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the "
        "timeout period. Idle connections will be closed.",
    ),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SlowDown": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
}


class S3Error(Exception):
    """An error answered to the client as S3 would. `extra` adds elements after the Message."""

    def __init__(
        self, code: str, message: str | None = None, extra: Mapping[str, str] | None = None
    ) -> None:
        status, default = KNOWN[code]
        self.code = code
        self.status = status
        self.message = message or default
        self.extra = dict(extra or {})
        super().__init__(f"{code}: {self.message}")


def new_request_id() -> str:
    """16 hex digits naming one request in errors and logs. Not a secret (S3 shows its own to
    anyone), so from `random`: no system call per request, as `secrets` makes."""
    return f"{random.getrandbits(64):016X}"


MAX_RESOURCE = 1100  # a bucket and a key of S3's longest (1024 bytes): longer is cut short


def render(error: S3Error, resource: str, request_id: str) -> bytes:
    if len(resource) > MAX_RESOURCE:
        resource = resource[:MAX_RESOURCE] + "..."
    parts = [f"<Code>{escape(error.code)}</Code>", f"<Message>{escape(error.message)}</Message>"]
    parts += [f"<{k}>{escape(v)}</{k}>" for k, v in error.extra.items()]
    parts += [f"<Resource>{escape(resource)}</Resource>", f"<RequestId>{request_id}</RequestId>"]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    ).encode()


def error_response(error: S3Error, method: str, resource: str, request_id: str) -> http.Response:
    """The error as an HTTP answer; a HEAD answer carries no body, as S3's."""
    body = b"" if method.upper() == "HEAD" else render(error, resource, request_id)
    headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    from mitmproxy import http  # see the imports above

    return http.Response.make(error.status, body, headers)


_CODE = re.compile(rb"<Code>\s*([^<\s]+)\s*</Code>")


def error_code(body: bytes) -> str | None:
    """The Code element of an S3 XML error body, or None.

    A search rather than an XML parse: it runs on every 404 and must not care about namespaces.
    """
    match = _CODE.search(body)
    return match[1].decode("ascii", "replace") if match else None
