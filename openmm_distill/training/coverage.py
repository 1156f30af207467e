"""Chemical coverage: which functional groups a student was trained on, and how it does on them.

For every group of :data:`openmm_distill.systems.functional_groups.FUNCTIONAL_GROUPS`:
how many training molecules carry it, how many evaluated (held-out) molecules carry
it, and the student's accuracy pooled over the structures of those molecules. A group
with few training molecules and a large error is chemistry the student does not know.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from openmm_distill.errors import ConfigError
from openmm_distill.metrics import MetricAccumulator
from openmm_distill.systems.functional_groups import FUNCTIONAL_GROUPS, functional_groups, group_counts

CATALOG_PREFIX = "catalog:"


def training_smiles(sources: Sequence[str]) -> List[str]:
    """SMILES of the training molecules named by ``sources``.

    Each source is an HDF5 dataset (its molecules' SMILES), a CSV with a ``smiles``
    column, a ``.smi`` file (SMILES first on each line) or ``catalog:<split>``.
    """
    out: List[str] = []
    for source in sources:
        if source.startswith(CATALOG_PREFIX):
            from openmm_distill.systems.catalog import molecules

            out += [m.smiles for m in molecules(source[len(CATALOG_PREFIX):])]
            continue
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"coverage source {source!r}: no such file (an .h5 dataset, a .csv or .smi list, "
                              f"or catalog:<split>)")
        if path.suffix in (".h5", ".hdf5"):
            from openmm_distill.training.datasets import open_labelled

            with open_labelled(str(path)) as labelled:
                out += [s for s in labelled.molecule_smiles if s]
        elif path.suffix == ".csv":
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                if "smiles" not in (reader.fieldnames or []):
                    raise ConfigError(f"coverage source {source}: no 'smiles' column (found {reader.fieldnames})")
                out += [row["smiles"] for row in reader]
        elif path.suffix in (".smi", ".txt"):
            out += [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        else:
            raise ConfigError(f"coverage source {source}: unknown suffix {path.suffix!r} (.h5, .csv, .smi)")
    return out


def coverage_rows(train: Iterable[str], evaluated_smiles: Mapping[str, str],
                  per_molecule: Mapping[str, MetricAccumulator]) -> List[Dict[str, object]]:
    """One row per functional group.

    Parameters
    ----------
    train : iterable of str
        SMILES of the training molecules.
    evaluated_smiles : mapping
        Evaluated molecule name -> SMILES.
    per_molecule : mapping
        Evaluated molecule name -> its metric accumulator (eV, eV/Angstrom).
    """
    counts = group_counts(train)
    pooled: Dict[str, MetricAccumulator] = {}
    carriers: Dict[str, int] = {}
    for name, acc in per_molecule.items():
        for group in functional_groups(evaluated_smiles.get(name, "")):
            pooled.setdefault(group, MetricAccumulator(acc.min_force)).merge(acc)
            carriers[group] = carriers.get(group, 0) + 1
    rows = []
    for group, _ in FUNCTIONAL_GROUPS:
        metrics = pooled[group].compute() if group in pooled else {}
        rows.append({"group": group, "train_molecules": counts[group], "evaluated_molecules": carriers.get(group, 0),
                     "force_r2": metrics.get("force_r2"), "force_mae": metrics.get("force_mae"),
                     "energy_mae_mev_per_atom": metrics.get("energy_mae_mev_per_atom")})
    return rows


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def coverage_markdown(rows: Sequence[Mapping[str, object]]) -> str:
    """Markdown table of :func:`coverage_rows`, the weakest groups (lowest R^2) marked."""
    lines = ["| functional group | training molecules | evaluated molecules | force R^2 | force MAE (eV/A) "
             "| energy MAE (meV/atom) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['train_molecules']} | {r['evaluated_molecules']} | "
                     f"{_fmt(r['force_r2'], '.3f')} | {_fmt(r['force_mae'], '.3f')} | "
                     f"{_fmt(r['energy_mae_mev_per_atom'], '.1f')} |")
    return "\n".join(lines)


def coverage_plot(rows: Sequence[Mapping[str, object]], path: str) -> None:
    """Training molecules per group (bars, log scale) beside the held-out force MAE per group (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(r["group"]) for r in rows]
    y = range(len(rows))
    fig, (left, right) = plt.subplots(1, 2, sharey=True, figsize=(10, 0.28 * len(rows) + 1.5))
    left.barh(list(y), [int(r["train_molecules"]) or 0.5 for r in rows], color="tab:blue")
    left.set_xscale("log")
    left.set_xlabel("training molecules carrying the group (log scale; 0 drawn as 0.5)")
    left.set_yticks(list(y), names, fontsize=8)
    left.invert_yaxis()
    mae = [(i, r["force_mae"]) for i, r in zip(y, rows) if r["force_mae"] is not None]
    right.scatter([m for _, m in mae], [i for i, _ in mae], color="tab:red")
    right.set_xlabel("force MAE on held-out molecules (eV/A)")
    right.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
