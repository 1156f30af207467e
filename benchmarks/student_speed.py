"""Student speed through OpenMM vs the Orb-v2 architecture, measured side by side in one run.

Prints, for each preset at ~20, ~100, ~1,000 and ~5,000 atoms:
  * bare call: the compiled module's energy + autograd forces, called from Python;
  * OpenMM force call: setPositions + getState(forces) on the CPU platform (TorchForce);
  * MD step: VerletIntegrator step on the CPU platform;
and the Orb-v2 architecture (random weights, the real teacher code path) per force
call at 20 and 100 atoms, plus GFN2-xTB for reference. Writes JSON beside this file.

    python benchmarks/student_speed.py              # all presets and sizes (~5 min)
    python benchmarks/student_speed.py --quick      # fewer repetitions
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import openmm_distill as od  # torch before openmm
import openmm
from openmm import unit

from openmm_distill.export import compile_student, load_compiled
from openmm_distill.models import build_student, count_parameters, preset_names
from openmm_distill.teachers.orb_v2 import random_orb_v2_checkpoint
from openmm_distill.systems import structure_from_smiles, structure_to_openmm_topology, water_box

SMALL = ("aspirin", "CC(=O)Oc1ccccc1C(=O)O")  # 21 atoms
MEDIUM = ("Ace-Ala9-Nme", "CC(=O)" + "NC(C)C(=O)" * 9 + "NC")  # 102 atoms


def timed(fn, min_time: float, min_reps: int = 5) -> float:
    """Median seconds per call over repeated timing blocks (after a warm-up)."""
    for _ in range(3):
        fn()
    samples, start = [], time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter(); fn(); samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def systems():
    out = []
    for name, smi in (SMALL, MEDIUM):
        s = structure_from_smiles(smi, seed=1)
        out.append((name, s.atomic_numbers, s.positions * 0.1, None, structure_to_openmm_topology(s)))
    for n_waters in (333, 1667):
        w = water_box(n_waters=n_waters, seed=0)
        out.append((f"water x{n_waters}", w.atomic_numbers, w.positions * 0.1, w.box * 0.1, w.topology))
    return out


def bench_student(path, z, pos_nm, box_nm, topology, min_time):
    module, _ = load_compiled(path)
    module.set_atoms(torch.tensor(z), None)
    pos_t = torch.tensor(pos_nm, dtype=torch.float32)
    box_t = None if box_nm is None else torch.tensor(box_nm, dtype=torch.float32)

    def bare():
        p = pos_t.clone().requires_grad_(True)
        e = module(p, box_t)
        torch.autograd.grad(e, p)

    system = od.create_system(topology, path)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.5 * unit.femtosecond), openmm.Platform.getPlatformByName("CPU"))
    if box_nm is not None:
        ctx.setPeriodicBoxVectors(*box_nm)
    ctx.setPositions(pos_nm)
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    jitter = np.random.default_rng(0).normal(scale=1e-4, size=pos_nm.shape)

    def force_call():
        ctx.setPositions(pos_nm + jitter)
        ctx.getState(getForces=True)

    steps = 10
    integrator = ctx.getIntegrator()
    return {
        "bare_call_ms": 1e3 * timed(bare, min_time),
        "openmm_force_call_ms": 1e3 * timed(force_call, min_time),
        "md_step_ms": 1e3 * timed(lambda: integrator.step(steps), min_time) / steps,
    }


def bench_teacher(name, z, pos_nm, min_time, **options):
    from openmm_distill.teachers import get_teacher

    teacher = get_teacher(name, **options)
    pos_a = pos_nm * 10.0
    return 1e3 * timed(lambda: teacher.compute(z, pos_a), min_time, min_reps=3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter timing blocks")
    parser.add_argument("--presets", default=",".join(preset_names()), help="comma-separated presets")
    parser.add_argument("--large-presets", default=None,
                        help="presets also measured on the 1,000- and 5,000-atom water boxes (default: all)")
    parser.add_argument("--max-atoms", type=int, default=None,
                        help="skip systems with more atoms (e.g. 200: only the ~20- and ~100-atom molecules; the "
                             "5,000-atom box takes ~10 s per original call on one thread)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for students and Orb-v2 alike (default 1: on a 2-core machine "
                             "shared with other work, one thread per process is fastest and least noisy)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results") / "student_speed.json"))
    args = parser.parse_args(argv)
    min_time = 0.5 if args.quick else 2.0
    torch.set_num_threads(args.threads)
    results = {"torch_threads": torch.get_num_threads(), "torch": torch.__version__, "openmm": openmm.__version__,
               "students": {}, "teachers": {}}
    structures = systems()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for preset in args.presets.split(","):
            torch.manual_seed(0)
            model = build_student(preset)
            path = tmp / f"{preset}.pt"
            compile_student(model, path, preset=preset)
            results["students"][preset] = {"parameters": count_parameters(model), "systems": {}}
            large = args.large_presets is None or preset in args.large_presets.split(",")
            for name, z, pos, box, top in (structures if large else structures[:2]):
                if args.max_atoms is not None and len(z) > args.max_atoms:
                    continue
                r = bench_student(path, z, pos, box, top, min_time)
                r["atoms"] = int(len(z))
                results["students"][preset]["systems"][name] = r
                print(f"{preset:>10} {name:>14} {len(z):>6} atoms  bare {r['bare_call_ms']:8.2f} ms  "
                      f"OpenMM force {r['openmm_force_call_ms']:8.2f} ms  MD step {r['md_step_ms']:8.2f} ms", flush=True)
        orb_ckpt = random_orb_v2_checkpoint(tmp / "orb_v2_random.ckpt")
        for name, z, pos, box, top in structures[:2]:
            results["teachers"][name] = {
                "atoms": int(len(z)),
                "orb_v2_ms": bench_teacher("orb-v2", z, pos, min_time, weights_path=str(orb_ckpt)),
                "gfn2_xtb_ms": bench_teacher("gfn2-xtb", z, pos, min_time),
            }
            t = results["teachers"][name]
            print(f"{'teachers':>10} {name:>14} {len(z):>6} atoms  Orb-v2 {t['orb_v2_ms']:8.1f} ms  "
                  f"GFN2-xTB {t['gfn2_xtb_ms']:8.1f} ms", flush=True)

    print("\nSummary (targets from issue #2)")
    for preset, data in results["students"].items():
        s = data["systems"]
        names = list(s)
        for name in names[:2]:
            t = results["teachers"][name]
            print(f"  {preset:>10} {name:>14}: {t['orb_v2_ms'] / s[name]['openmm_force_call_ms']:6.1f}x faster than "
                  f"Orb-v2 per force call, {t['gfn2_xtb_ms'] / s[name]['md_step_ms']:5.1f}x vs GFN2-xTB per MD step")
        overhead = [s[n]["md_step_ms"] / s[n]["bare_call_ms"] for n in names]
        print(f"  {preset:>10} MD step / bare call: " + ", ".join(f"{o:.2f}" for o in overhead))
        if len(names) == 4:
            per_atom = [s[n]["md_step_ms"] / s[n]["atoms"] for n in names]
            print(f"  {preset:>10} per-atom cost (MD step) 5,000 vs 1,000 atoms: {per_atom[3] / per_atom[2]:.2f}x")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
