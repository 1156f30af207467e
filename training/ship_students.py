"""Copy trained students into the package with a model card each, after evaluating them on the test split
and, for final students, on the blind set (``docs/chemistry.md``).

    python training/ship_students.py --runs runs/shipped --test data/shipped_test.h5 --blind data/blind.h5
    python training/ship_students.py --runs runs/v5 --presets original --recipe original=openmm_distill/recipes/original_explored.yaml

For each preset with ``<runs>/<preset>/student.pt`` (or only ``best.pt``, which is then
compiled here), this evaluates the compiled student on the test molecules (never seen
in training), writes ``openmm_distill/students/<preset>.pt`` and a model card
``<preset>.md`` (recipe, data, metrics against the targets, intended use, limits).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.export.student import SHIPPED_DIR
from openmm_distill.export.torchscript import read_metadata
from openmm_distill.models import preset_names
from openmm_distill.targets import blind_targets
from openmm_distill.teachers import recorded_teacher, teacher_label
from openmm_distill.training import evaluate_compiled

USE = {
    "original": "the most accurate student; molecular dynamics of small organic molecules after running the protocols",
    "tiny": "screening and fast exploratory MD; the default student of the quick start",
    "ultra-tiny": "the cheapest student, for very fast exploration where accuracy matters less",
}


def _training_minutes(run_dir: Path) -> str:
    """Wall-clock training time from the run's metrics.csv (sum of the per-epoch times)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return "an unrecorded time"
    with open(path) as f:
        seconds = sum(float(row["time_s"]) for row in csv.DictReader(f))
    return f"{seconds / 60:.0f} minutes"


def _training_data_line(cfg: dict) -> str:
    """What the training file held, read from the file itself when it is here (molecules, structures, analogues)."""
    path = _relative(str(cfg.get("data", {}).get("path", "")))
    if not path.is_file():
        return f"- Training file: `{path}` (not present here to describe).\n"
    from collections import Counter

    from openmm_distill.data.store import LabelledDataset

    with LabelledDataset(str(path)) as ds:
        names, n_structures = ds.molecule_names, len(ds)
        methods = Counter(str(p.get("method", "?")) for p in ds.provenance)
    analogues = sum("_analogue" in n for n in names)
    chemistry = sum(n.startswith("chem_") for n in names)
    focus = sum(n.startswith("chemfocus_") for n in names)
    assembled = sum(n.startswith("chemrare_") for n in names)
    by_method = ", ".join(f"{m} {n:,}" for m, n in methods.most_common())
    line = f"- Training file `{path}`: {n_structures:,} structures ({by_method}) of {len(names):,} molecules"
    if analogues:
        line += (f", of which {analogues} are analogues of the training molecules (`openmm_distill/recipes/data/train_analogues.csv`, "
                 "small RDKit edits, none equal to a validation or test molecule; sampled with "
                 "`openmm_distill/recipes/data/analogues_train.yaml`)")
    if chemistry:
        line += (f"; {chemistry:,} are the training chemistry (`systems/chemistry/train_chemistry.csv`: molecules drawn "
                 "by rule from ChEMBL drugs, FreeSolv and ZINC, none in the blind set or any other list; sampled "
                 "with `systems/chemistry/train_chemistry_sampling.yaml`)")
    if focus:
        line += (f"; {focus:,} are the focus list (`systems/chemistry/train_chemistry_focus.csv`: molecules carrying "
                 "the functional groups the training chemistry is thin in, drawn by rule 6 of the same script)")
    if assembled:
        line += (f"; {assembled:,} are the assembled list (`systems/chemistry/train_chemistry_assembled.csv`: small "
                 "molecules built from templates for the groups no source has, phosphorus, disulfides, thiocarbonyls "
                 "and biguanides among them; rule 7 of the same script)")
    return line + ".\n"


def _relative(path: str) -> Path:
    """``path`` as the recipes name it: relative to the checkout, also when the trainer recorded it through a
    link (``data/`` or ``runs/`` kept outside the checkout: the shortest tail that names the same file here)."""
    p = Path(path)
    if not p.is_absolute():
        return p
    if p.is_relative_to(Path.cwd()):
        return p.relative_to(Path.cwd())
    for k in range(len(p.parts) - 1, 0, -1):
        tail = Path(*p.parts[k:])
        if tail.exists() and p.exists() and tail.resolve() == p.resolve():
            return tail
    return p


def _recipe_writing(output_dir: Path, preset: str) -> str:
    """The built-in recipe whose ``run.output_dir`` is ``output_dir`` (else the preset's own recipe)."""
    import yaml

    from openmm_distill.recipes import recipes_dir

    for path in sorted(recipes_dir("training").glob("*.yaml")):
        run = (yaml.safe_load(path.read_text()) or {}).get("run") or {}
        if run.get("output_dir") and Path(run["output_dir"]) == Path(output_dir):
            return f"openmm_distill/recipes/{path.name}"
    return f"openmm_distill/recipes/{preset}.yaml"


def _recipe_section(preset: str, cfg: dict, meta: dict, history_rows, run_dir: Path, recipe: str) -> str:
    optim = cfg.get("optim", {})
    text = (f"`{recipe}` (`optim.epochs={optim.get('epochs')}`, `optim.lr={optim.get('lr')}`, "
            f"`loss.energy_weight={cfg.get('loss', {}).get('energy_weight')}`), "
            f"trained with `run.threads={cfg.get('run', {}).get('threads') or 'null'}` (null: all cores) on the "
            f"project's 2-core CPU in "
            f"{_training_minutes(run_dir)}. Best epoch {meta.get('best_epoch')} of {history_rows}.")
    init_from = cfg.get("model", {}).get("init_from")
    if init_from and Path(init_from).suffix == "":
        text += (f" This was a fine-tuning round (`model.init_from: {init_from}`): it started from the `{init_from}` "
                 "student shipped before it and went on training on the file above (the recipe's header says "
                 "what was added, and how).")
    elif init_from:
        base = Path(init_from).parent
        text += (f" This was a fine-tuning round (`model.init_from`): it started from `{_relative(init_from)}`, the "
                 f"student of `{_recipe_writing(_relative(str(base)), preset)}` (trained in {_training_minutes(base)}), and went on training "
                 f"on the file above (the recipe's header says what was added, and how).")
    return text + "\nReproduce with the commands in `training/README.md` (\"What was actually run for the shipped files\")."


def teacher_of(meta: dict) -> tuple:
    """(registry name, words for the card, issue of the test-split targets, issue of the blind-set targets)
    of the teacher a student recorded."""
    record = meta.get("teacher") or {}
    name = recorded_teacher(record)[0]
    if name == "gfn2-xtb":
        return name, "**GFN2-xTB** (tblite)", "#4", "#15"
    version = record.get("version", "") if isinstance(record, dict) else ""
    words = f"**{teacher_label(record)}**" + (f" ({version})" if version else "")
    return name, words, "#16", "#16"


def blind_section(preset: str, blind, test, blind_path: str, shipped: str = "", meta: dict | None = None) -> str:
    """The blind set beside the test split, against the blind-set targets of the student's preset and teacher."""
    if blind is None:
        return ""
    b, t = blind.as_dict(), test.as_dict()
    teacher, words, _, issue = teacher_of(meta or {})
    targets = blind_targets(preset, teacher)
    lines = []
    for metric, label in (("force_r2", "force R^2"), ("force_mae", "force MAE (eV/A)"),
                          ("angle_deg", "mean angular error (deg)"), ("energy_mae_mev_per_atom", "energy MAE (meV/atom)")):
        value = b["metrics"][metric]
        kind, bound = targets.get(metric, (None, None))
        if kind is None:
            verdict = ""
        else:
            ok = value >= bound if kind == "min" else value <= bound
            verdict = f"{'>=' if kind == 'min' else '<='} {bound:g} | {'PASS' if ok else 'FAIL'}"
        lines.append(f"| {label} | {value:.4g} | {t['metrics'][metric]:.4g} | {verdict or ' | '} |")
    worst = ", ".join(f"{name} {m['force_r2']:.3f}" for name, m in list(blind.per_molecule().items())[:3])
    return f"""## Accuracy on the blind set ({b['n_structures']} structures, {len(b['molecules'])} molecules; see docs/chemistry.md)

Random ChEMBL molecules drawn by a rule frozen before any evaluation, in no list of the repository,
geometries from GFN2-xTB MD at 300/450/600 K labelled by {words}; evaluated once, on this final student:

| metric | blind set | test split | blind target (issue {issue}) | verdict |
|---|---|---|---|---|
{chr(10).join(lines)}

Weakest molecules (force R^2): {worst}. Command: `openmm-distill evaluate --student {shipped or preset} --data {blind_path} --worst 5`.

"""


def model_card(preset: str, meta: dict, report, history_rows: int, run_dir: Path, test_path: str,
               recipe: str = "", blind=None, blind_path: str = "", shipped: str = "") -> str:
    shipped = shipped or preset
    teacher, words, issue, _ = teacher_of(meta)
    use = USE[preset] if teacher == "gfn2-xtb" else (
        f"the energy surface of {words.split(' (')[0]} at a small model's cost: MD of small organic molecules "
        "after running the protocols")
    relabelled = "" if teacher == "gfn2-xtb" else (
        f"\n- Labels: those geometries relabelled with {words} (`openmm-distill label --relabel`), no new sampling.")
    cfg = meta.get("training_config", {})
    t = report.as_dict()
    rows = "\n".join(
        f"| {v['label']} | {v['value']:.4g} | {'>=' if v['kind'] == 'min' else '<='} {v['target']:g} | "
        f"{'PASS' if v['passed'] else 'FAIL'} |" for v in t["targets"].values())
    val = meta.get("validation_metrics", {})
    return f"""# Model card: `{shipped}` student

PaiNN student distilled from {words} for organic molecules with elements
{', '.join(meta.get('element_symbols', []))}. {meta.get('n_parameters'):,} parameters, cutoff
{meta.get('cutoff_angstrom')} Angstrom, compiled in {meta.get('dtype')} for OpenMM (positions nm, energy kJ/mol).

- **Intended use:** {use}.
- **Not for:** charged or open-shell species, metals or elements outside the list above (refused
  with an error), condensed phases and periodic systems (trained on isolated molecules only),
  reactions and bond breaking (no such geometries in the data), anything where its teacher itself is
  not trusted.

## Data

- Molecules: the `train` split of `openmm_distill/systems/data/molecules.csv` (521 molecules, split by molecule;
  validation 64, test 64 molecules never seen in training).
- Geometries: `openmm_distill/recipes/data/shipped_train.yaml` (ETKDG conformers, random and normal-mode
  displacements, GFN2-xTB-driven Langevin MD at 300/450/600 K); validation and test:
  `openmm_distill/recipes/data/shipped_eval.yaml` (GFN2-xTB MD snapshots at 300, 450 and 600 K).{relabelled}
{_training_data_line(cfg)}- Training data hash: `{meta.get('training_data_hash')}`.

## Recipe

{_recipe_section(preset, cfg, meta, history_rows, run_dir, recipe or f"openmm_distill/recipes/{preset}.yaml")}

{blind_section(preset, blind, report, blind_path, shipped, meta)}## Accuracy on the test split ({t['n_structures']} structures, {len(t['molecules'])} molecules, `{Path(test_path).name}`)

| metric | value | target (issue {issue}) | verdict |
|---|---|---|---|
{rows}
| force RMSE (eV/A) | {t['metrics']['force_rmse']:.4g} | | |

Validation set (`{Path(str(cfg.get('data', {}).get('validation_path') or 'split of the training file')).name}`) at the best epoch: force MAE {val.get('force_mae', float('nan')):.4g} eV/A,
R^2 {val.get('force_r2', float('nan')):.4g}, angle {val.get('angle_deg', float('nan')):.3g} deg,
energy MAE {val.get('energy_mae_mev_per_atom', float('nan')):.3g} meV/atom.

Printed by: `openmm-distill evaluate --student {shipped} --data {test_path}`.
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/shipped", help="folder with one training run per preset")
    parser.add_argument("--test", default="data/shipped_test.h5", help="labelled test-split dataset")
    parser.add_argument("--suffix", default="", help="run folders are <runs>/<preset><suffix> (e.g. _chemistry)")
    parser.add_argument("--blind", help="labelled blind set (docs/chemistry.md); only for final students")
    parser.add_argument("--name-suffix", default="",
                        help="shipped as <preset><name-suffix> (e.g. --name-suffix=-sevennet0 for students of another teacher)")
    parser.add_argument("--presets", default=",".join(preset_names()))
    parser.add_argument("--recipe", action="append", default=[], metavar="PRESET=YAML",
                        help="the recipe a preset's run used, for its model card (default openmm_distill/recipes/PRESET.yaml)")
    args = parser.parse_args(argv)
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    # Presets not shipped this time keep their entries.
    metrics_file = SHIPPED_DIR / "test_metrics.json"
    summary = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    recipes = dict(item.split("=", 1) for item in args.recipe)
    for preset in args.presets.split(","):
        run = Path(args.runs) / f"{preset}{args.suffix}"
        student = run / "student.pt"
        if not student.is_file():
            print(f"{preset}: no {student}, skipped")
            continue
        report = evaluate_compiled(str(student), args.test, split="all", preset=preset)
        print(report.format(), "\n")
        blind = evaluate_compiled(str(student), args.blind, split="all", preset=preset) if args.blind else None
        if blind is not None:
            print("blind set:\n" + blind.format(), "\n")
        meta = read_metadata(student)
        rows = sum(1 for _ in open(run / "metrics.csv")) - 1 if (run / "metrics.csv").is_file() else "?"
        shipped = preset + args.name_suffix
        shutil.copyfile(student, SHIPPED_DIR / f"{shipped}.pt")
        (SHIPPED_DIR / f"{shipped}.md").write_text(model_card(preset, meta, report, rows, run, args.test,
                                                                  recipes.get(preset, ""), blind, args.blind or "",
                                                                  shipped))
        summary[shipped] = report.as_dict()
        if blind is not None:
            summary[shipped]["blind"] = {k: v for k, v in blind.as_dict().items() if k != "per_molecule"}
    metrics_file.write_text(json.dumps(dict(sorted(summary.items())), indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
