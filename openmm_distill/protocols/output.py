"""A protocol's output: JSON (machine), Markdown tables and summary (people), the output folder."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from openmm_distill.protocols.openmm_setup import ModelLike, model_label
from openmm_distill.systems.resolve import safe_name


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays and paths; non-finite floats become ``None``."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Union[str, os.PathLike], payload: Dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (NaN/inf as null) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def default_output_dir(protocol: str, model: ModelLike) -> Path:
    """``runs/protocols/<student>/<protocol>`` under the current directory."""
    return Path("runs") / "protocols" / safe_name(model_label(model)) / protocol


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "",
             enabled: bool = True, unit_name: str = "it"):
    """A tqdm progress bar (on stderr) that can be switched off; ``leave=False`` keeps logs short."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=False, unit=unit_name,
                dynamic_ncols=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a Markdown table: ``None``/NaN as an em dash, small/large values in scientific form."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "—"
    if v != 0 and (abs(v) < 10 ** -(digits) or abs(v) >= 1e6):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:,.{max(digits - 1, 1)}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are formatted with :func:`fmt` unless already strings."""
    def cell(value: Any) -> str:
        # A literal pipe would end the cell; Markdown wants it escaped.
        return (value if isinstance(value, str) else fmt(value)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return "\n".join(lines)


@dataclass
class ProtocolOutput:
    """What a protocol run produced.

    Attributes
    ----------
    protocol : str
        ``"nve"``, ``"throughput"``, ``"accuracy"``, ``"stability"`` or ``"report"``.
    output_dir : pathlib.Path
    results : dict
        The payload written to ``<protocol>.json``.
    files : list of pathlib.Path
        Every file written (JSON, PNG, CSV, DCD, Markdown).
    summary : str
        The Markdown summary (also written to ``summary.md``).
    """

    protocol: str
    output_dir: Path
    results: Dict[str, Any]
    files: List[Path] = field(default_factory=list)
    summary: str = ""

    @property
    def json_path(self) -> Path:
        return self.output_dir / f"{self.protocol}.json"


def finish(protocol: str, output_dir: Path, results: Dict[str, Any], summary: str, files: List[Path]) -> ProtocolOutput:
    """Write ``<protocol>.json`` and ``summary.md`` and bundle everything in a :class:`ProtocolOutput`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = write_json(output_dir / f"{protocol}.json", results)
    md_path = output_dir / "summary.md"
    md_path.write_text(summary.rstrip() + "\n")
    return ProtocolOutput(protocol, output_dir, results, [json_path, md_path] + list(files), summary)
