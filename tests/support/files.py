"""Local files of the tests: those they upload and download, compared by hash (never read
whole), and the config documents they write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

MIB = 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def write_document(path: Path, document: object) -> Path:
    """`document` as a config file: JSON if `path` ends in .json, else YAML; a str as it is."""
    if isinstance(document, str):
        path.write_text(document)
    elif path.suffix == ".json":
        path.write_text(json.dumps(document, indent=2))
    else:
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
