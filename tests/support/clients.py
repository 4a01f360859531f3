"""boto3 as the tests' S3 client: path style, one attempt (a refusal is seen, not retried), and
timeouts, so that a hung proxy fails a test instead of stalling the run."""

from __future__ import annotations

import boto3
from botocore.config import Config

from tests.support.root_keys import REGION, ROOT_ACCESS, ROOT_SECRET


def s3_client(
    endpoint: str,
    access: str = ROOT_ACCESS,
    secret: str = ROOT_SECRET,
    *,
    verify: str | None = None,
    signature_version: str | None = None,
):
    """`signature_version`: "s3v4" for SigV4 presigned URLs (boto3 presigns with SigV2 for a
    custom endpoint), "s3" for SigV2 headers; botocore's default otherwise."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        verify=verify,
        config=Config(
            signature_version=signature_version,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=5,
            read_timeout=20,
        ),
    )
