"""What a backend holds, asked directly with its own keys (never through the proxy)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from addon.local.servers import S3Server


def client(server: S3Server):
    """The server's own client (each server makes it once: making one takes tens of ms)."""
    return server.client()


def _found(head) -> bool:
    """True if the HEAD succeeds, False on its 404; any other answer fails the test."""
    try:
        head()
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e
        return False
    return True


def has_bucket(server: S3Server, bucket: str) -> bool:
    return _found(lambda: client(server).head_bucket(Bucket=bucket))


def has_object(server: S3Server, bucket: str, key: str) -> bool:
    return _found(lambda: client(server).head_object(Bucket=bucket, Key=key))


def put_direct(server: S3Server, bucket: str, key: str, body: bytes) -> None:
    """Store an object on this backend alone (creating the bucket there if needed)."""
    if not has_bucket(server, bucket):
        client(server).create_bucket(Bucket=bucket)
    client(server).put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream"
    )
