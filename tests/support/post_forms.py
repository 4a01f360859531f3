"""Browser form uploads (POST Object) as clients make them: botocore's `generate_presigned_post`
signs the form (SigV4, or SigV2 as boto3 does for a custom endpoint by default), urllib3 (what
`requests` uses) encodes the body, `requests` sends it. Nothing here is the code under test."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import requests
from urllib3 import encode_multipart_formdata

from tests.support.clients import s3_client
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET

Field = tuple[str, str | tuple[str, bytes]]


def presigned_post(
    endpoint: str,
    bucket: str,
    key: str,
    *,
    fields: dict[str, str] | None = None,
    conditions: list | None = None,
    expires: int = 600,
    sigv2: bool = False,
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
) -> dict:
    """botocore's form for `endpoint` (its `url` and `fields`), signed with `access`/`secret`."""
    client = s3_client(endpoint, access, secret, signature_version="s3" if sigv2 else "s3v4")
    return client.generate_presigned_post(
        bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires
    )


def policy_of(form_fields: dict[str, str]) -> dict:
    return json.loads(base64.b64decode(form_fields["policy"]))


def encode(
    fields: dict[str, str] | Sequence[tuple[str, str]],
    file: tuple[str, bytes] | bytes,
    after: Sequence[tuple[str, str]] = (),
    boundary: str | None = None,
) -> tuple[str, bytes]:
    """The Content-Type and body a browser sends: the fields, `file` (a filename and content,
    or bare content), then `after` (which S3 ignores)."""
    items = list(fields.items()) if isinstance(fields, dict) else list(fields)
    parts: list[Field] = [*items, ("file", file if isinstance(file, tuple) else ("", file))]
    parts += list(after)
    body, content_type = encode_multipart_formdata(parts, boundary=boundary)
    return content_type, body


def post(url: str, form_fields: dict[str, str], data: bytes, filename: str = "upload.bin"):
    """What a web page's form does: `requests.post` with the fields and the file."""
    return requests.post(url, data=form_fields, files={"file": (filename, data)}, timeout=60)
