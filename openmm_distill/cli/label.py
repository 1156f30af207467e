"""``openmm-distill label``: sample geometries of molecules and label them with a teacher."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Tuple

from openmm_distill.errors import ConfigError, MissingFileError

HELP = "sample geometries of molecules and label them with a teacher into an HDF5 dataset"
DESCRIPTION = """Sample geometries of molecules (RDKit conformers with explicit hydrogens,
random, normal-mode and close-contact displacements, teacher-driven Langevin MD) and label
them with a teacher (energies in eV, forces in eV/Angstrom) into an HDF5 dataset.

Molecules come from any mix of: files (--input: a CSV with columns name,smiles,
a .smi file with "SMILES [name]" per line, or SDF/MOL/PDB structures with explicit
hydrogens), --smiles NAME=SMILES, catalog names or SMILES (--molecules) or a catalog
split (--split).

The job writes OUTPUT.partial, commits after every molecule, and renames it to
OUTPUT when done. If it is killed, run the same command again: it resumes
where it stopped (no duplicated or lost structure). Structures the teacher
fails on are recorded in the file and skipped.

examples:
  openmm-distill label --split train -o data/train.h5 --sampling-config shipped_train --workers 2
  openmm-distill label --input mols.csv -o data.h5 --teacher gfn2-xtb --md-temperatures 300 600
  openmm-distill label --smiles ethanol=CCO --smiles benzene=c1ccccc1 -o small.h5 --md-snapshots 0
  openmm-distill label --split train -o train.h5 --shard 3/16     (writes train.shard3-of-16.h5)
  openmm-distill label --input mols.smi -o orb.h5 --teacher orb-v2 --teacher-option weights_path=orb.ckpt
  openmm-distill label --relabel train.h5 -o train_7net.h5 --teacher sevennet --teacher-option model=7net-0
then: openmm-distill dataset merge train.shard*-of-16.h5 -o train.h5

--relabel IN.h5 labels the geometries of an existing dataset with another teacher
instead of sampling molecules (keys, molecules, charges and geometry provenance are
kept; the output records the source file's SHA-256). It is the same resumable,
sharded job, so --workers, --shard and resuming work as above.
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
                     help="CSV with columns name,smiles, .smi/.txt with 'SMILES [name]' per line, or SDF/MOL/PDB "
                          "structures with explicit hydrogens (repeatable)")
    src.add_argument("--smiles", action="append", default=[], metavar="NAME=SMILES", help="one molecule (repeatable)")
    src.add_argument("--molecules", nargs="+", default=[], metavar="NAME",
                     help="catalog names (`openmm-distill systems` lists them), SMILES or structure files")
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
    parser.add_argument("--relabel", metavar="DATASET",
                        help="label the geometries of this dataset (.h5) with --teacher instead of sampling molecules")
    add_output_arguments(parser)
    add_teacher_arguments(parser)

    sam = parser.add_argument_group("sampling (defaults: openmm_distill.data.SamplingConfig)")
    sam.add_argument("--sampling-config", metavar="YAML",
                     help="sampling options from a YAML file or a built-in recipe (shipped_train, shipped_eval, "
                          "analogues_train, contacts_train); flags below override it")
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


def teacher_options_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    return _parse_key_values(args.teacher_option, "--teacher-option")


def _parse_key_values(values: List[str], what: str) -> Dict[str, Any]:
    from openmm_distill.config_loader import parse_value

    out: Dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"{what} must look like KEY=VALUE, got {item!r}")
        key, _, value = item.partition("=")
        out[key.strip()] = parse_value(value)
    return out


def collect_molecules(args: argparse.Namespace) -> List[Tuple[str, str]]:
    """All molecules named on the command line, in order, as ``(name, smiles)``."""
    from openmm_distill.systems.catalog import molecules as catalog_molecules
    from openmm_distill.systems.resolve import molecule_list

    for path in args.input:
        if not os.path.isfile(path):
            raise MissingFileError(f"--input file {path!r} does not exist")
    pairs = molecule_list(args.input)
    for item in args.smiles:
        if "=" not in item:
            raise ConfigError(f"--smiles must look like NAME=SMILES, got {item!r}")
        name, _, smiles = item.partition("=")
        pairs.append((name.strip(), smiles.strip()))
    if args.split:
        pairs.extend((m.name, m.smiles) for m in catalog_molecules(split=args.split))
    pairs.extend(molecule_list(args.molecules))
    if args.limit is not None:
        pairs = pairs[: max(0, args.limit)]
    if not pairs:
        raise ConfigError("no molecules given: use --input, --smiles, --molecules or --split")
    return pairs


def sampling_from_args(args: argparse.Namespace):
    from openmm_distill.data.sampling import SamplingConfig
    from openmm_distill.recipes import find_recipe

    base = SamplingConfig.from_yaml(find_recipe(args.sampling_config, "sampling")).to_dict() \
        if args.sampling_config else {}
    for flag, field in _SAMPLING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            base[field] = value
    return SamplingConfig.from_dict(base)


def shard_output(output: str, shard) -> str:
    """``data.h5`` with shard (3, 16) -> ``data.shard3-of-16.h5``."""
    root, ext = os.path.splitext(output)
    return f"{root}.shard{shard[0]}-of-{shard[1]}{ext or '.h5'}"


def job_options(args: argparse.Namespace, shard) -> Dict[str, Any]:
    """Teacher, output and execution options shared by :func:`~openmm_distill.data.labelling.label` and ``relabel``."""
    return dict(
        teacher=args.teacher,
        teacher_options=teacher_options_from_args(args),
        n_workers=args.workers,
        shard=shard,
        resume=args.resume,
        overwrite=args.overwrite,
        compression=args.compression,
        creation_command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        progress=not args.quiet,
    )


def run_relabel(args: argparse.Namespace) -> int:
    """``--relabel``: the source dataset replaces the molecule and sampling options, which are refused."""
    from openmm_distill.data.labelling import parse_shard, relabel

    given = [flag for flag in ("input", "smiles", "molecules", "split", "limit") if getattr(args, flag)]
    given += [flag for flag in ("sampling_config", *_SAMPLING_FLAGS) if getattr(args, flag) is not None]
    given = [f"--{flag.replace('_', '-')}" for flag in given]
    if given:
        raise ConfigError(f"--relabel takes the geometries of {args.relabel}; remove {', '.join(given)}")
    shard = parse_shard(args.shard)
    output = shard_output(args.output, shard) if shard else args.output
    where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    print(f"relabelling {args.relabel} with {args.teacher}{where} -> {output}", file=sys.stderr)
    report = relabel(args.relabel, output, **job_options(args, shard))
    print(report.summary())
    return 0


def run(args: argparse.Namespace) -> int:
    from openmm_distill.data.labelling import label, parse_shard

    if args.relabel:
        return run_relabel(args)
    molecules = collect_molecules(args)
    sampling = sampling_from_args(args)
    shard = parse_shard(args.shard)
    output = shard_output(args.output, shard) if shard else args.output
    print(
        f"labelling {len(molecules)} molecules{f' (shard {shard[0]}/{shard[1]})' if shard else ''} "
        f"with {args.teacher} -> {output}; up to {sampling.geometries_per_molecule()} geometries per molecule",
        file=sys.stderr,
    )
    report = label(molecules, output, sampling=sampling, **job_options(args, shard))
    print(report.summary())
    return 0
