"""`aws-chunked` is how a body was sent, not how the object is stored: the headers of an upload
sent as the plain object, and the Content-Encoding an object keeps."""

from __future__ import annotations

_FRAMING = frozenset(
    {"content-length", "transfer-encoding", "x-amz-decoded-content-length", "x-amz-trailer"}
)


def stored_encoding(value: str) -> str:
    """A Content-Encoding without `aws-chunked` (SeaweedFS keeps it with objects uploaded that
    way); "" when nothing else is left."""
    return ",".join(e for e in value.split(",") if e.strip().lower() != "aws-chunked")


def decoded_headers(headers: list[tuple[str, str]], decoded_length: int) -> list[tuple[str, str]]:
    """Headers for the same upload sent as the plain object (no framing, no trailer)."""
    kept = []
    for name, value in headers:
        lname = name.lower()
        if lname == "content-encoding":
            value = stored_encoding(value)
            if not value:
                continue
        elif lname in _FRAMING:
            continue
        kept.append((name, value))
    return [*kept, ("Content-Length", str(decoded_length))]
