"""A fake S3 primary that takes copies at little cost: what copy-on-read writes, and no more.

    python -m tests.benchmark.fake_primary --port PORT --root DIR

nginx cannot be a copy's primary (its PUT answers 201 without the ETag a copy checks, and it has
no multipart upload); SeaweedFS can, at about 10 ms of CPU per MiB, on the same cores as the
client. This serves /<bucket>/<key> from files under DIR, one thread per connection:

- GET and HEAD: the file, or 404 NoSuchKey (the proxy asks the primary first);
- PUT: the body to a file, its MD5 as the ETag (what the copy checks); `If-None-Match: *` on a
  key that exists is 412;
- multipart: POST ?uploads, PUT ?partNumber&uploadId, POST ?uploadId (the parts joined; ETag the
  MD5 of their MD5s, -N), DELETE ?uploadId;
- DELETE of a key: 204.

It ignores signatures, as the nginx fake does. Its CPU is its own (the benchmark reports each
process's): the MD5 of what it is sent, about 1.5 ms per MiB, and the copy to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socketserver
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote

from tests.benchmark.backends import NOSUCHKEY_XML

_PIECE = 1024 * 1024


class Handler(socketserver.StreamRequestHandler):
    rbufsize = _PIECE
    root: Path  # set by serve()

    def handle(self) -> None:
        while True:
            line = self.rfile.readline(65536)
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (field := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
                name, _, value = field.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            path, _, query = target.partition("?")
            self.answer(method, unquote(path).lstrip("/"), parse_qs(query, True), headers)

    def send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        fields = {"Content-Length": str(len(body)), **(headers or {})}
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        self.wfile.write(head.encode() + body)
        self.wfile.flush()

    def receive(self, length: int, into: Path) -> hashlib._Hash:
        """The request body to `into`, hashed as it comes."""
        md5 = hashlib.md5()
        with into.open("wb") as f:
            left = length
            while left:
                piece = self.rfile.read1(min(left, _PIECE))
                if not piece:
                    raise ConnectionError("the body ended early")
                md5.update(piece)
                f.write(piece)
                left -= len(piece)
        return md5

    def answer(self, method: str, name: str, query: dict, headers: dict[str, str]) -> None:
        path = self.root / name
        length = int(headers.get("content-length", "0"))
        uploads = self.root / ".uploads"
        if method in ("GET", "HEAD"):
            if not path.is_file():
                error = NOSUCHKEY_XML.encode()
                length = {"Content-Type": "application/xml", "Content-Length": str(len(error))}
                self.send(404, length, error if method == "GET" else b"")
                return
            size = path.stat().st_size
            self.send(200, {"Content-Length": str(size)})
            if method == "GET":
                with path.open("rb") as f:
                    shutil.copyfileobj(f, self.wfile, _PIECE)
                self.wfile.flush()
        elif method == "PUT" and "uploadId" in query:
            part = uploads / query["uploadId"][0] / f"{int(query['partNumber'][0]):05d}"
            md5 = self.receive(length, part)
            self.send(200, {"ETag": f'"{md5.hexdigest()}"'})
        elif method == "PUT":
            if headers.get("if-none-match") == "*" and path.exists():
                self.receive(length, self.root / ".discarded")
                self.send(412)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            md5 = self.receive(length, path)
            self.send(200, {"ETag": f'"{md5.hexdigest()}"'})
        elif method == "POST" and "uploads" in query:
            upload = uuid.uuid4().hex
            (uploads / upload).mkdir(parents=True)
            result = f"<InitiateMultipartUploadResult><UploadId>{upload}</UploadId>"
            self.send(200, {}, (result + "</InitiateMultipartUploadResult>").encode())
        elif method == "POST" and "uploadId" in query:
            self.rfile.read(length)
            self.complete(path, uploads / query["uploadId"][0])
        elif method == "DELETE" and "uploadId" in query:
            shutil.rmtree(uploads / query["uploadId"][0], ignore_errors=True)
            self.send(204)
        elif method == "DELETE":
            path.unlink(missing_ok=True)
            self.send(204)
        else:
            self.send(501)

    def complete(self, path: Path, upload: Path) -> None:
        parts = sorted(upload.iterdir())
        digests = []
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as whole:
            for part in parts:
                md5 = hashlib.md5()
                with part.open("rb") as f:
                    while piece := f.read(_PIECE):
                        md5.update(piece)
                        whole.write(piece)
                digests.append(md5.digest())
        shutil.rmtree(upload, ignore_errors=True)
        etag = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
        body = f"<CompleteMultipartUploadResult><ETag>&quot;{etag}&quot;</ETag>"
        self.send(200, {}, (body + "</CompleteMultipartUploadResult>").encode())


_REASONS = {200: "OK", 204: "No Content", 404: "Not Found", 412: "Precondition Failed"}


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(port: int, root: Path) -> None:
    Handler.root = root
    with Server(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark.fake_primary")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    os.makedirs(args.root, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.port, args.root)


if __name__ == "__main__":
    main()
