"""``openmm-distill label``: sample geometries of molecules and label them with a teacher."""
from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Any, Dict, List, Tuple

from openmm_distill.errors import ConfigError

HELP = "sample geometries of molecules and label them with a teacher into an HDF5 dataset"
DESCRIPTION = """Sample geometries of molecules (RDKit conformers with explicit hydrogens,
random, normal-mode and close-contact displacements, teacher-driven Langevin MD) and label
them with a teacher (energies in eV, forces in eV/Angstrom) into an HDF5 dataset.

Molecules come from any mix of: a SMILES file (--input: a CSV with columns
name,smiles, or a .smi file with "SMILES [name]" per line), --smiles NAME=SMILES,
catalog names (--molecules) or a catalog split (--split).

The job writes OUTPUT.partial, commits after every molecule, and renames it to
OUTPUT when done. If it is killed, run the same command again: it resumes
where it stopped (no duplicated or lost structure). Structures the teacher
fails on are recorded in the file and skipped.

examples:
  openmm-distill label --split train -o data/train.h5 --workers 2
  openmm-distill label --input mols.csv -o data.h5 --teacher gfn2-xtb --md-temperatures 300 600
  openmm-distill label --smiles ethanol=CCO --smiles benzene=c1ccccc1 -o small.h5 --md-snapshots 0
  openmm-distill label --split train -o train.h5 --shard 3/16     (writes train.shard3-of-16.h5)
  openmm-distill label --input mols.smi -o orb.h5 --teacher orb-v2 --teacher-option weights_path=orb.ckpt
then: openmm-distill dataset merge train.shard*-of-16.h5 -o train.h5
"""

# Sampling flags: argparse dest -> SamplingConfig field.
_SAMPLING_FLAGS = {
    "conformers": "n_conformers",
    "random_samples": "random_samples",
    "random_sigma": "random_sigma",
    "normal_mode_samples": "normal_mode_samples",
    "normal_mode_temperature": "normal_mode_temperature_K",
    "normal_mode_hessian": "normal_mode_hessian",
    "contact_samples": "contact_samples",
    "contact_scale": "contact_scale",
    "md_temperatures": "md_temperatures_K",
    "md_conformers": "md_conformers",
    "md_driver": "md_driver",
    "md_snapshots": "md_snapshots",
    "md_interval": "md_interval_steps",
    "md_equilibration": "md_equilibration_steps",
    "md_timestep": "md_timestep_fs",
    "seed": "seed",
}


def add_molecule_arguments(parser: argparse.ArgumentParser) -> None:
    """``--input/--smiles/--molecules/--split/--limit``, read back by :func:`collect_molecules`."""
    src = parser.add_argument_group("molecules")
    src.add_argument("--input", action="append", default=[], metavar="FILE",
                     help="CSV with columns name,smiles, or .smi/.txt with 'SMILES [name]' per line (repeatable)")
    src.add_argument("--smiles", action="append", default=[], metavar="NAME=SMILES", help="one molecule (repeatable)")
    src.add_argument("--molecules", nargs="+", default=[], metavar="NAME", help="molecule names from the catalog")
    src.add_argument("--split", choices=("train", "validation", "test"), help="all catalog molecules of a split")
    src.add_argument("--limit", type=int, metavar="N", help="only the first N molecules (quick runs)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the labelled dataset goes (``-o``, ``--overwrite``, ``--no-resume``, ``--compression``)."""
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", required=True, help="dataset file to write (.h5)")
    out.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    out.add_argument("--no-resume", dest="resume", action="store_false",
                     help="start over instead of resuming OUTPUT.partial (resume is the default)")
    out.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip", help="HDF5 compression (default gzip)")


def add_teacher_arguments(parser: argparse.ArgumentParser) -> None:
    """``--teacher`` and ``--teacher-option``, read back by :func:`teacher_options_from_args`."""
    from openmm_distill.teachers.registry import DEFAULT_TEACHER, available_teachers

    tea = parser.add_argument_group("teacher")
    tea.add_argument("--teacher", default=DEFAULT_TEACHER, choices=available_teachers(),
                     help=f"teacher (default {DEFAULT_TEACHER})")
    tea.add_argument("--teacher-option", action="append", default=[], metavar="KEY=VALUE",
                     help="teacher option, value parsed as YAML (e.g. accuracy=0.1, weights_path=orb.ckpt, "
                          "calculator=ase.calculators.emt:EMT) (repeatable)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_molecule_arguments(parser)
    add_output_arguments(parser)
    add_teacher_arguments(parser)

    sam = parser.add_argument_group("sampling (defaults: openmm_distill.data.SamplingConfig)")
    sam.add_argument("--sampling-config", metavar="YAML", help="sampling options from a YAML file; flags below override it")
    sam.add_argument("--conformers", type=int, help="ETKDG conformers per molecule (default 4)")
    sam.add_argument("--random-samples", type=int, help="Gaussian displacements per conformer (default 2)")
    sam.add_argument("--random-sigma", type=float, help="their sigma, Angstrom (default 0.03)")
    sam.add_argument("--normal-mode-samples", type=int, help="normal-mode displacements per conformer (default 2)")
    sam.add_argument("--normal-mode-temperature", type=float, help="their temperature, K (default 500)")
    sam.add_argument("--normal-mode-hessian", choices=("mmff", "teacher"), help="Hessian for the modes (default mmff)")
    sam.add_argument("--contact-samples", type=int,
                     help="close contacts per conformer: two atoms bonded to a common neighbour pushed together "
                          "(default 0)")
    sam.add_argument("--contact-scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
                     help="their new distance as a fraction of the old, drawn from [LOW, HIGH] (default 0.6 0.9)")
    sam.add_argument("--md-temperatures", type=float, nargs="+", metavar="K", help="Langevin MD temperatures (default 300 500 800)")
    sam.add_argument("--md-conformers", type=int, help="conformers MD starts from (default 1)")
    sam.add_argument("--md-driver", choices=("teacher", "mmff"),
                     help="what drives the MD: the teacher (default; snapshots come labelled, ~md-interval teacher "
                          "calls each) or MMFF94 (one teacher call per snapshot, MMFF's ensemble)")
    sam.add_argument("--md-snapshots", type=int, help="snapshots per MD run (default 4; 0 disables MD)")
    sam.add_argument("--md-interval", type=int, help="MD steps between snapshots (default 5)")
    sam.add_argument("--md-equilibration", type=int, help="MD steps before the first interval (default 5)")
    sam.add_argument("--md-timestep", type=float, help="MD time step, fs (default 1.0)")
    sam.add_argument("--seed", type=int, help="master seed (default 0)")

    run_ = parser.add_argument_group("execution")
    run_.add_argument("--workers", type=int, default=1, help="worker processes, each single-threaded (default 1)")
    run_.add_argument("--shard", metavar="I/N",
                      help="label only molecules I, I+N, I+2N, ... (0-based) into OUTPUT with suffix .shardI-of-N")
    run_.add_argument("--quiet", action="store_true", help="no progress bar")


def read_smiles_file(path: str) -> List[Tuple[str, str]]:
    """``(name, smiles)`` pairs from a CSV (columns name,smiles) or a SMILES file ('SMILES [name]' lines)."""
    if not os.path.exists(path):
        raise ConfigError(f"input file {path} does not exist")
    pairs: List[Tuple[str, str]] = []
    if path.lower().endswith(".csv"):
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = {f.lower().strip(): f for f in (reader.fieldnames or [])}
            if "smiles" not in fields:
                raise ConfigError(f"{path}: a CSV input needs a 'smiles' column (and ideally 'name'); found {reader.fieldnames}")
            for k, row in enumerate(reader):
                smiles = row[fields["smiles"]].strip()
                name = row[fields["name"]].strip() if "name" in fields else f"mol{k}"
                if smiles:
                    pairs.append((name, smiles))
        return pairs
    stem = os.path.splitext(os.path.basename(path))[0]
    with open(path) as fh:
        for k, line in enumerate(fh):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            pairs.append((parts[1] if len(parts) > 1 else f"{stem}_{k}", parts[0]))
    return pairs


def teacher_options_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    return _parse_key_values(args.teacher_option, "--teacher-option")


def _parse_key_values(values: List[str], what: str) -> Dict[str, Any]:
    import yaml

    out: Dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"{what} must look like KEY=VALUE, got {item!r}")
        key, _, value = item.partition("=")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def collect_molecules(args: argparse.Namespace) -> List[Tuple[str, str]]:
    """All molecules named on the command line, in order."""
    pairs: List[Tuple[str, str]] = []
    for path in args.input:
        pairs.extend(read_smiles_file(path))
    for item in args.smiles:
        if "=" not in item:
            raise ConfigError(f"--smiles must look like NAME=SMILES, got {item!r}")
        name, _, smiles = item.partition("=")
        pairs.append((name.strip(), smiles.strip()))
    if args.molecules or args.split:
        try:
            from openmm_distill.systems import catalog
        except ImportError as exc:
            raise ConfigError(f"the molecule catalog is not available ({exc}); use --input or --smiles") from exc
        if args.split:
            pairs.extend((m.name, m.smiles) for m in catalog.molecules(split=args.split))
        for name in args.molecules:
            entry = catalog.get_molecule(name)
            pairs.append((entry.name, entry.smiles))
    if args.limit is not None:
        pairs = pairs[: max(0, args.limit)]
    if not pairs:
        raise ConfigError("no molecules given: use --input, --smiles, --molecules or --split")
    return pairs


def sampling_from_args(args: argparse.Namespace):
    from openmm_distill.data.sampling import SamplingConfig

    base = SamplingConfig.from_yaml(args.sampling_config).to_dict() if args.sampling_config else {}
    for flag, field in _SAMPLING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            base[field] = value
    return SamplingConfig.from_dict(base)


def shard_output(output: str, shard) -> str:
    """``data.h5`` with shard (3, 16) -> ``data.shard3-of-16.h5``."""
    root, ext = os.path.splitext(output)
    return f"{root}.shard{shard[0]}-of-{shard[1]}{ext or '.h5'}"


def run(args: argparse.Namespace) -> int:
    from openmm_distill.data.labelling import label, parse_shard

    molecules = collect_molecules(args)
    sampling = sampling_from_args(args)
    teacher_options = teacher_options_from_args(args)
    shard = parse_shard(args.shard)
    output = shard_output(args.output, shard) if shard else args.output
    print(
        f"labelling {len(molecules)} molecules{f' (shard {shard[0]}/{shard[1]})' if shard else ''} "
        f"with {args.teacher} -> {output}; up to {sampling.geometries_per_molecule()} geometries per molecule",
        file=sys.stderr,
    )
    report = label(
        molecules,
        output,
        sampling=sampling,
        teacher=args.teacher,
        teacher_options=teacher_options,
        n_workers=args.workers,
        shard=shard,
        resume=args.resume,
        overwrite=args.overwrite,
        compression=args.compression,
        creation_command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        progress=not args.quiet,
    )
    print(report.summary())
    return 0
