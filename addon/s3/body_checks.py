"""What a body must hash to: the checksums S3 names in `x-amz-checksum-*`, and a plain body's
signed SHA-256 (`x-amz-content-sha256`), checked while the body streams."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Protocol

from addon.s3.errors import S3Error


class Checksum(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _crt(name: str) -> Callable[[], Checksum] | None:
    """crc32c and crc64nvme need awscrt (optional); without it the backend checks them."""
    try:
        from awscrt import checksums  # type: ignore[import-not-found]
    except ImportError:
        return None
    width = {"crc32c": 4, "crc64nvme": 8}[name]
    function = {"crc32c": "crc32c", "crc64nvme": "crc64nvme"}[name]

    class _Crt:
        def __init__(self) -> None:
            self.value = 0

        def update(self, data: bytes) -> None:
            self.value = getattr(checksums, function)(data, self.value)

        def digest(self) -> bytes:
            return self.value.to_bytes(width, "big")

    return _Crt


# trailer header -> (name S3 uses in messages, checksum factory or None when we cannot compute it)
CHECKSUMS: dict[str, tuple[str, Callable[[], Checksum] | None]] = {
    "x-amz-checksum-crc32": ("CRC32", _Crc32),
    "x-amz-checksum-crc32c": ("CRC32C", _crt("crc32c")),
    "x-amz-checksum-crc64nvme": ("CRC64NVME", _crt("crc64nvme")),
    "x-amz-checksum-sha1": ("SHA1", hashlib.sha1),
    "x-amz-checksum-sha256": ("SHA256", hashlib.sha256),
}


class PayloadHashCheck:
    """A plain body whose SHA-256 was signed: the last byte is held until the hash matches."""

    def __init__(self, expected: str) -> None:
        self.expected = expected
        self.hash = hashlib.sha256()
        self.held = b""

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self.hash.update(data)
        out, self.held = self.held + data[:-1], data[-1:]
        return out

    def finish(self) -> bytes:
        if self.hash.hexdigest() != self.expected:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                extra={
                    "ClientComputedContentSHA256": self.expected,
                    "S3ComputedContentSHA256": self.hash.hexdigest(),
                },
            )
        return self.held
