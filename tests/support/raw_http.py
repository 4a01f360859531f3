"""One raw HTTP/1.1 client for the tests: a request goes on the wire exactly as given (header
order, duplicates, a Content-Length that lies), and the answer is read as it comes (a
`100 Continue` is seen, not skipped; a byte after a HEAD answer's headers is caught)."""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

Fields = tuple[tuple[str, str], ...]
Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class Request:
    """One HTTP/1.1 request exactly as it goes on the wire."""

    method: str
    path: str  # as sent (percent-encoded)
    query: str = ""  # as sent, without the "?"
    headers: Fields = ()
    body: bytes = b""
    expect_continue: bool = False  # send the headers only, and read the answer before any body

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def set(self, name: str, value: str) -> Request:
        """Replace every value of `name` by one `value` (in the first one's place), or add it."""
        fields, done = [], False
        for k, v in self.headers:
            if k.lower() != name.lower():
                fields.append((k, v))
            elif not done:
                fields.append((k, value))
                done = True
        if not done:
            fields.append((name, value))
        return replace(self, headers=tuple(fields))

    def add(self, name: str, value: str) -> Request:
        return replace(self, headers=(*self.headers, (name, value)))

    def without(self, name: str) -> Request:
        return replace(
            self, headers=tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        )

    def auth(self, change: Callable[[str], str]) -> Request:
        return self.set("Authorization", change(self.header("Authorization")))

    def params(self, change: Callable[[Pairs], Pairs]) -> Request:
        """Edit the query as raw (still encoded) key/value pairs."""
        pairs = [(k, v) for k, _, v in (p.partition("=") for p in self.query.split("&") if p)]
        return replace(self, query="&".join(f"{k}={v}" for k, v in change(pairs)))

    def with_length(self) -> Request:
        """Content-Length appended as http.client sends it: for a body, and for PUT and POST
        even when empty."""
        if not self.body and self.method not in ("PUT", "POST"):
            return self
        return self.add("Content-Length", str(len(self.body)))

    def head(self) -> bytes:
        """The request line and the headers, up to the empty line that ends them."""
        lines = [f"{self.method} {self.target} HTTP/1.1", *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    first_line: bytes  # the first status line that came (a refusal must not be a 100 Continue)
    trailing: bytes = b""  # what came after a HEAD answer's headers (must be nothing)

    def error(self) -> dict[str, str]:
        """The S3 XML error's elements, by tag."""
        root = ET.fromstring(self.body)
        assert root.tag == "Error", self.body
        return {child.tag: child.text or "" for child in root}


class Connection:
    """One connection to 127.0.0.1:`port`; requests on it are answered one after another."""

    def __init__(self, port: int, timeout: float = 20) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_) -> None:
        self._sock.close()

    def write(self, data: bytes) -> bool:
        """Send `data`; False if the server closed first (a refused upload is answered before
        its body is read, and the proxy closes then)."""
        try:
            self._sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def end_writing(self) -> None:
        """Half-close: the server sees the end of what this client sends."""
        self._sock.shutdown(socket.SHUT_WR)

    def read_until_closed(self) -> bytes:
        """Whatever the server sends until it closes the connection."""
        data = b""
        while more := self._sock.recv(65536):
            data += more
        return data

    def exchange(self, request: Request) -> Answer:
        """Send `request` (its body right after its headers, unless `expect_continue`), read
        its answer."""
        self.write(request.head() if request.expect_continue else request.head() + request.body)
        return self.answer(request.method)

    def answer(self, method: str) -> Answer:
        if method == "HEAD":
            return self._head_answer()
        first_line = self._sock.recv(64, socket.MSG_PEEK).partition(b"\r\n")[0]
        response = http.client.HTTPResponse(self._sock, method=method)
        response.begin()  # skips a 100 Continue: first_line shows whether one came
        return Answer(response.status, response.headers, response.read(), first_line)

    def _head_answer(self) -> Answer:
        """Read a HEAD answer byte by byte: any byte after its headers would be a body."""
        data = b""
        while b"\r\n\r\n" not in data and (more := self._sock.recv(65536)):
            data += more
        head, _, trailing = data.partition(b"\r\n\r\n")
        timeout = self._sock.gettimeout()
        self._sock.settimeout(0.3)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            trailing += self._sock.recv(4096)
        self._sock.settimeout(timeout)
        first_line, _, fields = head.partition(b"\r\n")
        headers = http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n"))
        return Answer(int(first_line.split()[1]), headers, b"", first_line, trailing)


def send(port: int, request: Request) -> Answer:
    """`request` on a new connection to 127.0.0.1:`port`, and its answer."""
    with Connection(port) as connection:
        return connection.exchange(request)


def fetch(url: str, method: str = "GET", body: bytes = b"", headers: Fields = ()) -> Answer:
    """What curl does with a URL (a presigned one, say): Host, `headers`, the body's length."""
    split = urlsplit(url)
    assert split.scheme == "http" and split.hostname == "127.0.0.1", url
    request = Request(method, split.path, split.query, (("Host", split.netloc), *headers), body)
    return send(split.port, request.with_length())
