"""A fake S3 backend that stores nothing and lists many keys: ListObjectsV2 pages generated from
the key's number, for measuring a listing comparison of a million keys (`s3-multi check`'s peak
RSS) without storing them. Every bucket it is told of lists the same keys, so two of them agree;
any other bucket is NoSuchBucket. It ignores signatures.

Keys are `dNNN/kNNNNNNN` (10,000 to a "directory"), each with an ETag that is the MD5 of its
number and a size from it. It answers ListObjectsV2 with or without a delimiter (`/`, the top
level or one directory), continuation tokens, and HEAD of a bucket; anything else is 501.

    python -m tests.benchmark.fake_listing --port P --keys N --bucket a --bucket b
"""

from __future__ import annotations

import argparse
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

PER_DIRECTORY = 10_000
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'


def key(n: int) -> str:
    return f"d{n // PER_DIRECTORY:03d}/k{n:07d}"


def contents(n: int) -> str:
    etag = hashlib.md5(str(n).encode()).hexdigest()
    return (
        f"<Contents><Key>{quote(key(n), safe='/')}</Key>"
        f"<LastModified>2026-12-07T00:00:00.000Z</LastModified>"
        f"<ETag>&quot;{etag}&quot;</ETag><Size>{(n * 7919) % 10_000}</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
    )


def page(bucket: str, total: int, query: dict[str, str]) -> str:
    """One page of the listing `query` asks for."""
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    most = max(1, min(int(query.get("max-keys", "1000")), 1000))
    directories = (total + PER_DIRECTORY - 1) // PER_DIRECTORY
    if delimiter == "/" and not prefix:
        names = [f"d{d:03d}/" for d in range(directories)]
        body = "".join(f"<CommonPrefixes><Prefix>{n}</Prefix></CommonPrefixes>" for n in names)
        return _result(bucket, prefix, delimiter, body, 0, None)
    first, end = 0, total
    if prefix:
        directory = int(prefix[1:4]) if prefix[1:4].isdigit() else directories
        first, end = directory * PER_DIRECTORY, min((directory + 1) * PER_DIRECTORY, total)
    start = int(query.get("continuation-token", first))
    stop = min(start + most, end)
    body = "".join(contents(n) for n in range(start, stop))
    return _result(bucket, prefix, delimiter, body, stop - start, stop if stop < end else None)


def _result(bucket, prefix, delimiter, body, count, token) -> str:  # type: ignore[no-untyped-def]
    more = "true" if token is not None else "false"
    fields = f"<Name>{bucket}</Name><Prefix>{prefix}</Prefix><KeyCount>{count}</KeyCount>"
    fields += (
        f"<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>{more}</IsTruncated>"
    )
    if delimiter:
        fields += f"<Delimiter>{delimiter}</Delimiter>"
    if token is not None:
        fields += f"<NextContinuationToken>{token}</NextContinuationToken>"
    return f"{HEAD}{fields}{body}</ListBucketResult>"


def serve(port: int, total: int, buckets: set[str]) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # the head and the body are two writes: no 40 ms wait

        def _answer(self, status: int, body: bytes = b"", head_only: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def _bucket(self) -> tuple[str, dict[str, str]]:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            return parts.path.strip("/").split("/")[0], query

        def do_GET(self) -> None:
            bucket, query = self._bucket()
            if bucket not in buckets:
                error = b"<Error><Code>NoSuchBucket</Code><Message>none</Message></Error>"
                return self._answer(404, error)
            if query.get("list-type") != "2":
                return self._answer(501)
            self._answer(200, page(bucket, total, query).encode())

        def do_HEAD(self) -> None:
            bucket, _ = self._bucket()
            self._answer(200 if bucket in buckets else 404, head_only=True)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark.fake_listing")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--bucket", action="append", required=True)
    args = parser.parse_args()
    serve(args.port, args.keys, set(args.bucket))


if __name__ == "__main__":
    main()
