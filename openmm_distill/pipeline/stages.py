"""Stage bookkeeping: a stage is skipped when its inputs' content hash matches the
record of its last successful run and its outputs still exist unchanged.

A record lives in ``<output_dir>/stages/<stage>.json``: the input key, the output
files with their SHA-256, and how long the stage took. Nothing is recorded for
a stage that failed or was killed, so a rerun redoes it (the labelling and
training stages resume their own partial work).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from openmm_distill.checksums import file_sha256

STAGE_FORMAT = 1


def stage_key(stage: str, inputs: Dict[str, Any]) -> str:
    """Content hash of everything a stage depends on (config values and upstream file hashes)."""
    text = json.dumps({"stage": stage, "format": STAGE_FORMAT, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StageStore:
    root: Path

    def record_path(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def load(self, stage: str) -> Optional[Dict[str, Any]]:
        path = self.record_path(stage)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def up_to_date(self, stage: str, key: str) -> bool:
        record = self.load(stage)
        if not record or record.get("key") != key:
            return False
        for out in record.get("outputs", {}).values():
            if not Path(out["path"]).exists() or file_sha256(out["path"]) != out["sha256"]:
                return False
        return True

    def save(self, stage: str, key: str, outputs: Dict[str, str], seconds: float, info: Optional[Dict] = None) -> None:
        path = self.record_path(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "stage": stage, "key": key, "seconds": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "outputs": {name: {"path": str(p), "sha256": file_sha256(p)} for name, p in outputs.items()},
            "info": info or {},
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, default=str))
        os.replace(tmp, path)

    def outputs(self, stage: str) -> Dict[str, str]:
        record = self.load(stage) or {}
        return {name: out["path"] for name, out in record.get("outputs", {}).items()}
