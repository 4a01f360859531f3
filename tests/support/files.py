"""Local files the tests upload and download, compared by hash (never read whole)."""

from __future__ import annotations

import hashlib
from pathlib import Path

MIB = 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(MIB):
            digest.update(piece)
    return digest.hexdigest()
