"""Labelling throughput with GFN2-xTB on 15-40-atom molecules.

Measures, on the same molecules:

1. teacher only: GFN2-xTB single points on pre-sampled geometries, one process;
2. the whole pipeline (`openmm_distill.data.label`: ETKDG conformers,
   random and normal-mode displacements, teacher-driven Langevin MD, HDF5
   writes), one process;
3. the whole pipeline with ``--workers`` processes (default 2);
4. the same with MMFF94-driven MD (``md_driver="mmff"``: one teacher call per
   MD snapshot instead of ``md_interval_steps``).

and prints geometries/s and the projected time for 10,000 geometries
(target: <= 10 minutes on this machine). The overall pipeline rates include
process start-up (spawned workers import torch); the projection uses the
steady-state rate after the first results, which a 10,000-geometry job sees.

usage:
  python benchmarks/labelling_throughput.py                  # ~150 geometries per measurement
  python benchmarks/labelling_throughput.py --molecules 8 --workers 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import openmm_distill  # noqa: F401  (torch before anything that might import openmm)

# Fallback when the catalog is not available: common drug-like molecules, 15-40 atoms with H.
FALLBACK = [
    ("paracetamol", "CC(=O)Nc1ccc(O)cc1"),
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"),
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"),
    ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"),
    ("nicotine", "CN1CCC[C@H]1c1cccnc1"),
    ("naphthalene", "c1ccc2ccccc2c1"),
    ("salicylic_acid", "OC(=O)c1ccccc1O"),
    ("toluene", "Cc1ccccc1"),
    ("benzocaine", "CCOC(=O)c1ccc(N)cc1"),
    ("lidocaine", "CCN(CC)CC(=O)Nc1c(C)cccc1C"),
]
TARGET_GEOMETRIES = 10_000
TARGET_MINUTES = 10.0


def n_atoms_with_h(smiles: str) -> int:
    from rdkit import Chem

    return Chem.AddHs(Chem.MolFromSmiles(smiles)).GetNumAtoms()


def pick_molecules(count: int):
    """Molecules with 15-40 atoms (explicit H): the catalog's training split if available."""
    pool = []
    try:
        from openmm_distill.systems.catalog import molecules

        pool = [(m.name, m.smiles) for m in molecules(split="train")]
    except Exception:  # the catalog is optional for this benchmark
        pass
    pool = [(n, s) for n, s in pool + FALLBACK if 15 <= n_atoms_with_h(s) <= 40]
    seen, out = set(), []
    for name, smiles in pool:
        if name not in seen:
            seen.add(name)
            out.append((name, smiles))
    # Spread over the size range rather than taking the first few.
    step = max(1, len(out) // count)
    return out[::step][:count]


def teacher_only(molecules, n_geometries: int) -> dict:
    from openmm_distill.data.sampling import SamplingConfig, sample_molecule
    from openmm_distill.teachers import get_teacher

    config = SamplingConfig(n_conformers=2, random_samples=4, normal_mode_samples=4, md_snapshots=0)
    geometries = []
    for name, smiles in molecules:
        geometries.extend(sample_molecule(name, smiles, config).geometries)
    geometries = (geometries * (n_geometries // max(1, len(geometries)) + 1))[:n_geometries]
    teacher = get_teacher("gfn2-xtb")
    start = time.perf_counter()
    for g in geometries:
        teacher.compute(g.atomic_numbers, g.positions, charge=g.charge)
    seconds = time.perf_counter() - start
    atoms = sum(len(g.atomic_numbers) for g in geometries) / len(geometries)
    return {"geometries": len(geometries), "seconds": seconds, "mean_atoms": atoms}


def pipeline(molecules, workers: int, workdir: str, md_driver: str = "teacher") -> dict:
    from openmm_distill.data import SamplingConfig, label

    out = os.path.join(workdir, f"bench_{workers}_{md_driver}.h5")
    commits = []  # (time, structures written so far) after every molecule
    report = label(
        molecules, out, sampling=SamplingConfig(md_driver=md_driver), n_workers=workers,
        progress=False, overwrite=True, resume=False,
        callback=lambda p: commits.append((time.perf_counter(), p.structures_written)),
    )
    result = {"geometries": report.n_structures_written, "seconds": report.elapsed_s, "failed": report.n_failed}
    # Steady state: from the first committed molecule to the last (excludes worker start-up,
    # which a 10,000-geometry job amortises). With N workers the first N results arrive together,
    # so count from the N-th commit.
    k = min(workers, len(commits) - 1)
    if k >= 1 and commits[-1][0] > commits[k - 1][0]:
        result["steady_geometries_per_s"] = (commits[-1][1] - commits[k - 1][1]) / (commits[-1][0] - commits[k - 1][0])
    return result


def describe(label_: str, result: dict) -> dict:
    rate = result["geometries"] / result["seconds"]
    steady = result.get("steady_geometries_per_s", rate)
    minutes = TARGET_GEOMETRIES / steady / 60.0
    verdict = "meets" if minutes <= TARGET_MINUTES else "misses"
    print(
        f"{label_:<46} {result['geometries']:>5} geometries in {result['seconds']:6.1f} s = {rate:5.1f}/s"
        f" (steady {steady:5.1f}/s) -> {TARGET_GEOMETRIES} in {minutes:5.1f} min ({verdict} the {TARGET_MINUTES:g} min target)"
    )
    return {**result, "geometries_per_s": rate, "minutes_for_10k": minutes}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecules", type=int, default=6, help="molecules for the pipeline runs (default 6, ~27-32 geometries each)")
    parser.add_argument("--geometries", type=int, default=150, help="geometries for the teacher-only run (default 150)")
    parser.add_argument("--workers", type=int, default=2, help="workers for the parallel pipeline run (default 2)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    molecules = pick_molecules(args.molecules)
    sizes = [n_atoms_with_h(s) for _, s in molecules]
    print(f"molecules ({len(molecules)}, {min(sizes)}-{max(sizes)} atoms): " + ", ".join(f"{n} ({k})" for (n, _), k in zip(molecules, sizes)))
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    results = {"molecules": molecules, "atoms": sizes}
    results["teacher_only_1_process"] = describe("GFN2-xTB single points, 1 process", teacher_only(molecules, args.geometries))
    with tempfile.TemporaryDirectory() as workdir:
        results["pipeline_1_process"] = describe("pipeline (sample + label + write), 1 process", pipeline(molecules, 1, workdir))
        results[f"pipeline_{args.workers}_workers"] = describe(
            f"pipeline, {args.workers} worker processes", pipeline(molecules, args.workers, workdir)
        )
        results[f"pipeline_{args.workers}_workers_mmff_md"] = describe(
            f"pipeline, {args.workers} workers, MMFF-driven MD", pipeline(molecules, args.workers, workdir, "mmff")
        )
    print(f"load average after: {os.getloadavg()[0]:.2f} (other jobs on the machine slow every figure down)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
