"""SHA-256 of files, recorded as provenance (teacher checkpoints, source datasets, stage inputs).

A leaf module (standard library only), so every layer can record the same kind of checksum.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_sha256(path: "str | os.PathLike", chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes; of a folder: of its files' relative paths and hashes, in sorted order."""
    digest = hashlib.sha256()
    path = Path(path)
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode())
            digest.update(file_sha256(child).encode())
        return digest.hexdigest()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
