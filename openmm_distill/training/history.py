"""Per-epoch metric log: a CSV file (always) and TensorBoard (when importable).

The full history lives in memory and in ``last.pt``; the CSV is rewritten
from it after every epoch, so a resumed run's CSV is exactly that of an
uninterrupted one (no duplicated rows from epochs that were redone).
"""
from __future__ import annotations

import csv
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be imported (it needs the ``tensorboard`` package)."""
    return importlib.util.find_spec("tensorboard") is not None


class MetricLog:
    """Rows of per-epoch numbers written to ``<folder>/metrics.csv`` (and TensorBoard).

    Parameters
    ----------
    folder : path-like
        Run folder.
    tensorboard : bool
        Also write TensorBoard events to ``<folder>/tensorboard`` when possible.
    """

    def __init__(self, folder: str | os.PathLike, tensorboard: bool = True):
        self.folder = Path(folder)
        self.rows: List[Dict[str, float]] = []
        self.csv_path = self.folder / "metrics.csv"
        self._writer = None
        if tensorboard and tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder / "tensorboard"))

    @property
    def tensorboard_enabled(self) -> bool:
        return self._writer is not None

    def set_rows(self, rows: List[Dict[str, float]]) -> None:
        """Replace the history (on resume) and rewrite the CSV."""
        self.rows = [dict(r) for r in rows]
        self._write_csv()

    def append(self, row: Dict[str, float]) -> None:
        """Add one epoch's row (must contain ``epoch``) and rewrite the CSV."""
        self.rows.append(dict(row))
        self._write_csv()
        if self._writer is not None:
            step = int(row["epoch"])
            for k, v in row.items():
                if k != "epoch":
                    self._writer.add_scalar(k.replace("train_", "train/").replace("val_", "val/"), v, step)
            self._writer.flush()

    def _write_csv(self) -> None:
        if not self.rows:
            return
        columns: List[str] = []
        for r in self.rows:
            columns.extend(k for k in r if k not in columns)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="metrics.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", newline="") as handle:
                w = csv.DictWriter(handle, fieldnames=columns, restval="")
                w.writeheader()
                for r in self.rows:
                    w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
            os.replace(tmp, self.csv_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_metrics_csv(path: str | os.PathLike) -> List[Dict[str, Optional[float]]]:
    """Read a ``metrics.csv`` back as a list of dicts of floats (empty cells are None)."""
    with open(path, newline="") as handle:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(handle)]
