"""SigV2: what boto3 and the aws CLI presign by default, and what s3cmd can sign with."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from tests.support.clients import s3_client
from tests.support.direct import put_direct
from tests.support.processes import aws_cli
from tests.support.raw_http import fetch
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET
from tests.support.topologies import EACH_PRIMARY

pytestmark = [pytest.mark.e2e, pytest.mark.topologies(*EACH_PRIMARY)]


def v2_client(endpoint: str, secret: str = ROOT_SECRET):
    return s3_client(endpoint, ROOT_ACCESS, secret, signature_version="s3")


@pytest.mark.client("boto3", "generate_presigned_url (default: SigV2) GET, PUT")
def test_default_boto3_presigned_urls_are_sigv2_and_work(proxy, backends, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    key = "a b+(c)ü.txt"
    client.put_object(Bucket=bucket, Key=key, Body=b"on the primary")
    put_direct(backends[1], bucket, "warm.txt", b"on the secondary")

    get = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    assert "AWSAccessKeyId=" in get  # boto3's default for a custom endpoint
    answer = fetch(get)
    assert (answer.status, answer.body) == (200, b"on the primary")
    warm = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "warm.txt"})
    answer = fetch(warm)
    assert (answer.status, answer.body) == (200, b"on the secondary")

    put = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up.txt"})
    # SigV2 signs Content-Type: send none, as signed.
    assert fetch(put, "PUT", b"presigned put").status == 200
    assert backends[0].client().get_object(Bucket=bucket, Key="up.txt")["Body"].read() == (
        b"presigned put"
    )


@pytest.mark.client("aws CLI", "s3 presign (default: SigV2)")
def test_aws_cli_presign_works_unchanged(proxy, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="cli.txt", Body=b"presigned by the CLI")
    url = aws_cli("--endpoint-url", proxy.endpoint, "s3", "presign", f"s3://{bucket}/cli.txt")
    answer = fetch(url.decode().strip())
    assert (answer.status, answer.body) == (200, b"presigned by the CLI")


def test_expired_and_tampered_sigv2_urls_are_refused(proxy, bucket):
    client = proxy.client()
    client.create_bucket(Bucket=bucket)
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1
    )
    time.sleep(2)
    expired = fetch(url)
    assert (expired.status, expired.error()["Message"]) == (403, "Request has expired.")

    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    tampered = fetch(url.replace(f"/{bucket}/k", f"/{bucket}/other"))
    assert (tampered.status, tampered.error()["Code"]) == (403, "SignatureDoesNotMatch")


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
    answer = fetch(f"{put}&{added}", "PUT", b"<x/>")
    assert (answer.status, answer.error()["Code"]) == (400, "InvalidRequest")
    assert "Please use AWS4-HMAC-SHA256" in answer.error()["Message"]
    assert "Contents" not in backends[0].client().list_objects_v2(Bucket=bucket)
    assert f"PUT /{bucket}/k.txt refused: InvalidRequest" in proxy.log()
