"""A browser form's file streaming past (POST Object): counted, and its form closed after it.

`post_form` reads a form up to its file; what follows is the file's content, of any size, then
the delimiter that ends it. No I/O: fed bytes as they arrive, it returns what to forward.
"""

from __future__ import annotations

from addon.s3.errors import S3Error
from addon.s3.post_form import malformed


class FileTail:
    """The file's content as it streams past: counted up to the delimiter that ends it, so that
    `content-length-range` holds before the backend has a complete form.

    Until that delimiter, the bytes that could be its beginning are held back, so a refusal always
    leaves the backend with a form that does not end. What follows the file is made the form's
    epilogue (its delimiter is made the closing one, two bytes for two): S3 ignores the fields
    after the file, and no backend may read them, since the policy was not checked against them.
    """

    def __init__(self, boundary: bytes, size_range: tuple[int, int] | None) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.low = size_range[0] if size_range is not None else 0
        self.high: int | None = size_range[1] if size_range is not None else None
        self.pending = bytearray()
        self.size = 0  # of the file's content, so far
        self.ended = False  # the delimiter came: the rest is epilogue

    def feed(self, data: bytes) -> bytes:
        if self.ended:
            return data
        self.pending += data
        found = self.pending.find(self.delimiter)
        if found < 0:
            sent = max(0, len(self.pending) - len(self.delimiter) + 1)
            self._count(sent, exact=False)
            return self._release(sent)
        self._count(found, exact=True)
        closing = found + len(self.delimiter)
        if len(self.pending) < closing + 2:
            return self._release(found)  # the delimiter's next two bytes are still to come
        self.pending[closing : closing + 2] = b"--"
        self.ended = True
        return self._release(len(self.pending))

    def finish(self) -> bytes:
        if not self.ended:
            raise malformed()  # the file's part never ended
        return b""

    def _release(self, count: int) -> bytes:
        out = bytes(self.pending[:count])
        del self.pending[:count]
        return out

    def _count(self, count: int, exact: bool) -> None:
        """`exact`: the file ends here. A file found too large before its end is refused at
        once (its size is not known yet: only the limit is told)."""
        self.size += count
        if self.high is not None and self.size > self.high:
            proposed = {"ProposedSize": str(self.size)} if exact else {}
            raise S3Error("EntityTooLarge", extra={**proposed, "MaxSizeAllowed": str(self.high)})
        if exact and self.size < self.low:
            extra = {"ProposedSize": str(self.size), "MinSizeAllowed": str(self.low)}
            raise S3Error("EntityTooSmall", extra=extra)
