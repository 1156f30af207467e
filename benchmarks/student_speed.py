"""Student speed through OpenMM vs the Orb-v2 architecture, measured side by side in one run.

Prints, for each preset and backend at ~20, ~100, ~1,000 and ~5,000 atoms:
  * bare call: the module's energy + autograd forces, called from Python;
  * OpenMM force call: setPositions + getState(forces) on the CPU platform;
  * MD step: VerletIntegrator step on the CPU platform;
with two backends: ``torch`` (the TorchScript file in openmm-torch's TorchForce) and
``inductor`` (a PythonForce calling the same weights compiled by TorchInductor);
and the Orb-v2 architecture (random weights, the real teacher code path) per force
call at 20 and 100 atoms, plus GFN2-xTB for reference. Writes JSON beside this file.

Everything measured on one system is timed in alternating blocks (see
:func:`openmm_distill.timing.interleaved`), so the ratios printed at the end
compare calls made in the same seconds, not minutes apart on a host whose
speed drifts.

    python benchmarks/student_speed.py              # all presets, sizes and backends (~15-20 min)
    python benchmarks/student_speed.py --quick      # fewer repetitions (~8 min)
    python benchmarks/student_speed.py --presets tiny,tiny/64,original --max-atoms 200   # tiny beside its old width and original
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

import openmm_distill as od  # torch before openmm
from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.export import compile_student
from openmm_distill.export.eager import inductor_deployed
from openmm_distill.export.student import CompiledStudent
from openmm_distill.models import build_student, count_parameters, preset_names
from openmm_distill.systems import structure_from_smiles, structure_to_openmm_topology, water_box
from openmm_distill.teachers.orb_v2 import random_orb_v2_checkpoint
from openmm_distill.timing import interleaved
from openmm_distill.units import ANGSTROM_TO_NM, MS_PER_S, NM_TO_ANGSTROM

import openmm
from openmm import unit

SMALL = ("aspirin", "CC(=O)Oc1ccccc1C(=O)O")  # 21 atoms
MEDIUM = ("Ace-Ala9-Nme", "CC(=O)" + "NC(C)C(=O)" * 9 + "NC")  # 102 atoms
BACKENDS = ("torch", "inductor")  # TorchForce, and PythonForce with the network compiled by TorchInductor


def systems():
    out = []
    for name, smi in (SMALL, MEDIUM):
        s = structure_from_smiles(smi, seed=1)
        out.append((name, s.atomic_numbers, s.positions * ANGSTROM_TO_NM, None, structure_to_openmm_topology(s)))
    for n_waters in (333, 1667):
        w = water_box(n_waters=n_waters, seed=0)
        out.append((f"water x{n_waters}", w.atomic_numbers, w.positions * ANGSTROM_TO_NM, w.box * ANGSTROM_TO_NM, w.topology))
    return out


def bound_module(path, z, backend: str):
    """The module a backend calls: the TorchScript file, or its network compiled by TorchInductor."""
    student = CompiledStudent(path)
    module = student.bound_module(z)
    return inductor_deployed(module, student.metadata, "cpu") if backend == "inductor" else module


def parse_backends(parser: argparse.ArgumentParser, text: str) -> List[str]:
    """``--backends`` as a list; a usage error names any backend this benchmark cannot time."""
    backends = text.split(",")
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        parser.error(f"--backends {','.join(bad)}: choose from {', '.join(BACKENDS)}")
    return backends


def row_name(preset: str, backend: str) -> str:
    return preset if backend == "torch" else f"{preset} ({backend})"


def student_calls(path, z, pos_nm, box_nm, topology, backend: str = "torch") -> Dict[str, Callable[[], None]]:
    """Bare call, OpenMM force call and one MD step of a compiled student on one system."""
    module = bound_module(path, z, backend)
    pos_t = torch.tensor(pos_nm, dtype=torch.float32)
    box_t = None if box_nm is None else torch.tensor(box_nm, dtype=torch.float32)

    def bare():
        p = pos_t.clone().requires_grad_(True)
        e = module(p, box_t)
        torch.autograd.grad(e, p)

    system = od.create_system(topology, path, backend=backend, remove_cm_motion=False)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.5 * unit.femtosecond), openmm.Platform.getPlatformByName("CPU"))
    if box_nm is not None:
        ctx.setPeriodicBoxVectors(*box_nm)
    ctx.setPositions(pos_nm)
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    jitter = np.random.default_rng(0).normal(scale=1e-4, size=pos_nm.shape)
    integrator = ctx.getIntegrator()

    def force_call():
        ctx.setPositions(pos_nm + jitter)
        ctx.getState(getForces=True)

    def md_step():
        integrator.step(1)

    md_step.context = ctx  # keep the Context alive as long as the closure
    return {"bare_call_ms": bare, "openmm_force_call_ms": force_call, "md_step_ms": md_step}


def teacher_call(name, z, pos_nm, **options) -> Callable[[], None]:
    from openmm_distill.teachers import get_teacher

    teacher = get_teacher(name, **options)
    pos_a = pos_nm * NM_TO_ANGSTROM
    return lambda: teacher.compute(z, pos_a)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter timing blocks")
    parser.add_argument("--presets", default=",".join(preset_names()),
                        help="comma-separated presets; PRESET/WIDTH times the preset at another feature width "
                             "(e.g. tiny/64, tiny before it was widened)")
    parser.add_argument("--large-presets", default=None,
                        help="presets also measured on the 1,000- and 5,000-atom water boxes (default: all)")
    parser.add_argument("--max-atoms", type=int, default=None,
                        help="skip systems with more atoms (e.g. 200: only the ~20- and ~100-atom molecules; the "
                             "5,000-atom box takes ~10 s per original call on one thread)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for students and Orb-v2 alike (default 1: on a 2-core machine "
                             "shared with other work, one thread per process is fastest and least noisy)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="OpenMM backends to time: torch (TorchForce) and/or inductor (PythonForce running the "
                             "network compiled by TorchInductor; compiles for 20 s to 2 min first)")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results") / "student_speed.json"))
    args = parser.parse_args(argv)
    keep_freed_memory()  # students are timed with the allocator setting the CLI and protocols use
    min_time = 0.5 if args.quick else 2.0  # seconds of samples per timed call
    torch.set_num_threads(args.threads)
    results = {"torch_threads": torch.get_num_threads(), "torch": torch.__version__, "openmm": openmm.__version__,
               "students": {}, "teachers": {}}
    structures = systems()
    presets = args.presets.split(",")
    backends = parse_backends(parser, args.backends)
    rows = [row_name(p, b) for p in presets for b in backends]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {}
        for preset in presets:
            torch.manual_seed(0)
            name, _, width = preset.partition("/")
            model = build_student(name, **({"hidden": int(width)} if width else {}))
            paths[preset] = tmp / f"{preset.replace('/', '_')}.pt"
            compile_student(model, paths[preset], preset=name)
            for backend in backends:
                results["students"][row_name(preset, backend)] = {"parameters": count_parameters(model),
                                                                  "backend": backend, "systems": {}}
        orb_ckpt = random_orb_v2_checkpoint(tmp / "orb_v2_random.ckpt")
        for k, (name, z, pos, box, top) in enumerate(structures):
            if args.max_atoms is not None and len(z) > args.max_atoms:
                continue
            # Everything measured on this system, timed in alternating blocks (side by side).
            calls: Dict[str, Callable[[], None]] = {}
            for preset in presets:
                if k >= 2 and args.large_presets is not None and preset not in args.large_presets.split(","):
                    continue
                for backend in backends:
                    for what, fn in student_calls(paths[preset], z, pos, box, top, backend).items():
                        calls[f"{row_name(preset, backend)}|{what}"] = fn
            if k < 2:
                calls["teacher|orb_v2_ms"] = teacher_call("orb-v2", z, pos, weights_path=str(orb_ckpt))
                calls["teacher|gfn2_xtb_ms"] = teacher_call("gfn2-xtb", z, pos)
            timings = interleaved(calls, min_time)
            for row in rows:
                r = {what: MS_PER_S * timings[f"{row}|{what}"] for what in ("bare_call_ms", "openmm_force_call_ms", "md_step_ms")
                     if f"{row}|{what}" in timings}
                if not r:
                    continue
                r["atoms"] = int(len(z))
                results["students"][row]["systems"][name] = r
                print(f"{row:>19} {name:>14} {len(z):>6} atoms  bare {r['bare_call_ms']:8.2f} ms  "
                      f"OpenMM force {r['openmm_force_call_ms']:8.2f} ms  MD step {r['md_step_ms']:8.2f} ms", flush=True)
            if k < 2:
                results["teachers"][name] = {"atoms": int(len(z)),
                                             "orb_v2_ms": MS_PER_S * timings["teacher|orb_v2_ms"],
                                             "gfn2_xtb_ms": MS_PER_S * timings["teacher|gfn2_xtb_ms"]}
                t = results["teachers"][name]
                print(f"{'teachers':>19} {name:>14} {len(z):>6} atoms  Orb-v2 {t['orb_v2_ms']:8.1f} ms  "
                      f"GFN2-xTB {t['gfn2_xtb_ms']:8.1f} ms", flush=True)

    print("\nSummary (targets from issue #2)")
    for row, data in results["students"].items():
        s = data["systems"]
        names = list(s)
        for name in names[:2]:
            t = results["teachers"][name]
            print(f"  {row:>19} {name:>14}: {t['orb_v2_ms'] / s[name]['openmm_force_call_ms']:6.1f}x faster than "
                  f"Orb-v2 per force call, {t['gfn2_xtb_ms'] / s[name]['md_step_ms']:5.1f}x vs GFN2-xTB per MD step")
        overhead = [s[n]["md_step_ms"] / s[n]["bare_call_ms"] for n in names]
        print(f"  {row:>19} MD step / bare call: " + ", ".join(f"{o:.2f}" for o in overhead))
        if len(names) == 4:
            per_atom = [s[n]["md_step_ms"] / s[n]["atoms"] for n in names]
            print(f"  {row:>19} per-atom cost (MD step) 5,000 vs 1,000 atoms: {per_atom[3] / per_atom[2]:.2f}x")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
