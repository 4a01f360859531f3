"""SigV2: what boto3 and the aws CLI presign by default, and what s3cmd can sign with."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import EACH_PRIMARY, ROOT_ACCESS, ROOT_SECRET, aws_cli
from tests.test_routing import put_direct

pytestmark = pytest.mark.topologies(*EACH_PRIMARY)


def v2_client(endpoint: str, secret: str = ROOT_SECRET):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ROOT_ACCESS,
        aws_secret_access_key=secret,
        config=Config(signature_version="s3", retries={"max_attempts": 1}),
    )


@pytest.mark.client("boto3", "generate_presigned_url (default: SigV2) GET, PUT")
def test_default_boto3_presigned_urls_are_sigv2_and_work(proxy, backends, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    key = "a b+(c)ü.txt"
    client.put_object(Bucket=bucket, Key=key, Body=b"on the primary")
    put_direct(backends[1], bucket, "warm.txt", b"on the secondary")

    get = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    assert "AWSAccessKeyId=" in get  # boto3's default for a custom endpoint
    assert urllib.request.urlopen(get, timeout=10).read() == b"on the primary"
    warm = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "warm.txt"})
    assert urllib.request.urlopen(warm, timeout=10).read() == b"on the secondary"

    put = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up.txt"})
    # SigV2 signs Content-Type: send none, as signed (urllib would add one).
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.request("PUT", put.split(str(proxy.port), 1)[1], body=b"presigned put")
    assert connection.getresponse().status == 200
    connection.close()
    assert backends[0].client().get_object(Bucket=bucket, Key="up.txt")["Body"].read() == (
        b"presigned put"
    )


@pytest.mark.client("aws CLI", "s3 presign (default: SigV2)")
def test_aws_cli_presign_works_unchanged(proxy, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="cli.txt", Body=b"presigned by the CLI")
    url = aws_cli("--endpoint-url", proxy.endpoint, "s3", "presign", f"s3://{bucket}/cli.txt")
    url = url.decode().strip()
    assert urllib.request.urlopen(url, timeout=10).read() == b"presigned by the CLI"


def test_expired_and_tampered_sigv2_urls_are_refused(proxy, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1
    )
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url, timeout=10)
    assert expired.value.code == 403 and b"Request has expired." in expired.value.read()

    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    with pytest.raises(urllib.error.HTTPError) as tampered:
        urllib.request.urlopen(url.replace(f"/{bucket}/k", f"/{bucket}/other"), timeout=10)
    assert tampered.value.code == 403 and b"SignatureDoesNotMatch" in tampered.value.read()


@pytest.mark.client("boto3", "signature_version='s3' (SigV2 headers)")
def test_sigv2_header_auth_reads_and_writes(proxy, backends, bucket):
    client = v2_client(proxy.endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="v2.txt", Body=b"v2", Metadata={"colour": "blue"})
    stored = backends[0].client().get_object(Bucket=bucket, Key="v2.txt")
    assert stored["Body"].read() == b"v2" and stored["Metadata"] == {"colour": "blue"}
    assert client.get_object(Bucket=bucket, Key="v2.txt")["Body"].read() == b"v2"

    with pytest.raises(ClientError) as refused:
        v2_client(proxy.endpoint, secret="wrong").get_object(Bucket=bucket, Key="v2.txt")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("added", ["legal-hold", "retention", "publicAccessBlock"])
def test_a_sub_resource_sigv2_does_not_sign_cannot_be_added_to_a_presigned_url(
    proxy, backends, bucket, added
):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    put = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k.txt"})
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.request("PUT", put.split(str(proxy.port), 1)[1] + f"&{added}", body=b"<x/>")
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    assert answer.status == 400 and b"<Code>InvalidRequest</Code>" in body
    assert b"Please use AWS4-HMAC-SHA256" in body
    assert "Contents" not in backends[0].client().list_objects_v2(Bucket=bucket)
    assert f"PUT /{bucket}/k.txt refused: InvalidRequest" in proxy.log()
