"""`s3-multi-demo`: the proxy on a working local default, to see fallback in the first minute.

Starts three local S3 servers (moto, or SeaweedFS with --backend seaweedfs; each checks
signatures, with its own generated keys), puts a few objects on different backends, and runs the
proxy on configs/local.yaml with the servers' endpoints and keys given as
VGW_S3_MULTI_BACKEND_<N>_* overrides. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from addon.cli import parse_listen, serve
from addon.local.kinds import START
from addon.local.servers import S3Server

LOCAL_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "local.yaml"
ROOT_ACCESS, ROOT_SECRET = "s3multi-demo", "s3multi-demo-secret"
BUCKET = "demo"


def _seed(servers: Sequence[S3Server]) -> None:
    """A bucket on every backend and an object that only one backend has."""
    for server in servers:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        client.put_object(
            Bucket=BUCKET,
            Key=f"only-on-{server.name}.txt",
            Body=f"hello from {server.name}\n".encode(),
            ContentType="text/plain",
        )


def _banner(servers: Sequence[S3Server], host: str, port: int) -> str:
    endpoint = f"http://{host or '127.0.0.1'}:{port}"
    # The aws CLI installed beside this command (the dev extra), else the one on PATH.
    beside = Path(sys.executable).with_name("aws")
    aws_cli = str(beside) if beside.exists() else "aws"
    aws = (
        f"AWS_ACCESS_KEY_ID={ROOT_ACCESS} AWS_SECRET_ACCESS_KEY={ROOT_SECRET} "
        f"AWS_DEFAULT_REGION=us-east-1 {aws_cli} --endpoint-url {endpoint}"
    )
    lines = [
        "",
        f"s3-multi demo: proxy at {endpoint}",
        f"  root keys: access {ROOT_ACCESS}  secret {ROOT_SECRET}",
        *(f"  backend {i}: {s.name} at {s.endpoint}" for i, s in enumerate(servers)),
        "",
        "Read an object that only the third backend has (primary and secondary answer 404):",
        f"  {aws} s3 cp s3://{BUCKET}/only-on-{servers[-1].name}.txt -",
        "List the bucket (merged: the object only the third backend has is in it) and all buckets:",
        f"  {aws} s3 ls s3://{BUCKET}/",
        f"  {aws} s3 ls",
        "Write (goes to the primary only):",
        f"  echo hi | {aws} s3 cp - s3://{BUCKET}/new.txt",
        "",
        "Each request is logged below with the backends tried. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3-multi-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=parse_listen, default=parse_listen("127.0.0.1:7070"))
    parser.add_argument(
        "--backend",
        choices=sorted(START),
        default="moto",
        help="which S3 server runs the three backends (default: moto)",
    )
    args = parser.parse_args(argv)
    print(f"starting three local S3 servers ({args.backend}) ...", flush=True)
    servers = START[args.backend](["primary", "secondary", "tertiary"])
    try:
        for i, server in enumerate(servers):
            os.environ[f"VGW_S3_MULTI_BACKEND_{i}_ENDPOINT"] = server.endpoint
            os.environ[f"VGW_S3_MULTI_BACKEND_{i}_ACCESS"] = server.access
            os.environ[f"VGW_S3_MULTI_BACKEND_{i}_SECRET"] = server.secret
        _seed(servers)
        print(_banner(servers, *args.port), flush=True)
        return asyncio.run(
            serve(
                config=str(LOCAL_CONFIG),
                access=ROOT_ACCESS,
                secret=ROOT_SECRET,
                listen=args.port,
                debug=True,
            )
        )
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
