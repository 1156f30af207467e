"""Student call time with glibc's default allocator vs openmm-distill's ``keep_freed_memory``.

Each configuration runs in its own child process (the allocator is a process-wide
setting), alternating, so both see the same machine load. Prints per-call time,
per-atom time and the share of system time (page faults) for each size, and the
ratio default / kept.

    python benchmarks/allocator.py                       # tiny student, 21 to 5,001 atoms
    python benchmarks/allocator.py --preset original --max-atoms 1000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.export import load_compiled
from openmm_distill.units import MS_PER_S
path, max_atoms, min_time, bench_dir = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sys.path.insert(0, bench_dir)
from student_speed import systems  # the same four systems as the main benchmark
torch.set_num_threads(1)
module, _ = load_compiled(path)
out = {"allocator_tuned": keep_freed_memory(), "sizes": []}
for _, z, pos_nm, box_nm, _ in systems():
    if len(z) > max_atoms:
        continue
    box = None if box_nm is None else torch.tensor(box_nm, dtype=torch.float32)
    module.set_atoms(torch.tensor(z), None)
    pos = torch.tensor(pos_nm, dtype=torch.float32)
    def call():
        p = pos.clone().requires_grad_(True)
        torch.autograd.grad(module(p, box), p)
    for _ in range(3):
        call()
    r0, t0, n = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    while n < 3 or time.perf_counter() - t0 < min_time:
        call(); n += 1
    dt, r1 = (time.perf_counter() - t0) / n, resource.getrusage(resource.RUSAGE_SELF)
    sys_s, user_s = r1.ru_stime - r0.ru_stime, r1.ru_utime - r0.ru_utime
    out["sizes"].append({"atoms": int(len(z)), "call_ms": MS_PER_S * dt, "system_time_share": sys_s / max(sys_s + user_s, 1e-9)})
print("RESULT " + json.dumps(out))
"""


def run_child(mode: str, path: Path, max_atoms: int, min_time: float) -> dict:
    env = dict(os.environ, OPENMM_DISTILL_MALLOC=mode, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(max_atoms), str(min_time),
                           str(Path(__file__).resolve().parent)],
                          env=env, capture_output=True, text=True, check=True)
    line = next(row for row in proc.stdout.splitlines() if row.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="student preset (random weights; speed does not depend on them)")
    parser.add_argument("--max-atoms", type=int, default=6000, help="skip systems with more atoms")
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds of timing per size and configuration")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the faster of each is kept")
    parser.add_argument("--output", default=str(Path(__file__).with_name("results") / "allocator.json"))
    args = parser.parse_args(argv)

    import tempfile

    import torch

    from openmm_distill.export import compile_student
    from openmm_distill.models import build_student

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.preset}.pt"
        torch.manual_seed(0)
        compile_student(build_student(args.preset), path, preset=args.preset)
        best = {}
        for _ in range(args.rounds):
            for mode in ("system", "keep"):
                result = run_child(mode, path, args.max_atoms, args.min_time)
                for row in result["sizes"]:
                    key = (mode, row["atoms"])
                    if key not in best or row["call_ms"] < best[key]["call_ms"]:
                        best[key] = row
    sizes = sorted({atoms for _, atoms in best})
    print(f"{args.preset}, 1 thread, energy + forces per call (best of {args.rounds} alternating rounds)")
    print(f"{'atoms':>6} {'default ms':>11} {'sys %':>6} {'kept ms':>9} {'sys %':>6} {'default/kept':>13}")
    table = []
    for atoms in sizes:
        d, k = best[("system", atoms)], best[("keep", atoms)]
        ratio = d["call_ms"] / k["call_ms"]
        table.append({"atoms": atoms, "default_ms": d["call_ms"], "default_system_share": d["system_time_share"],
                      "kept_ms": k["call_ms"], "kept_system_share": k["system_time_share"], "ratio": ratio})
        print(f"{atoms:>6} {d['call_ms']:>11.2f} {100 * d['system_time_share']:>6.0f} {k['call_ms']:>9.2f} "
              f"{100 * k['system_time_share']:>6.0f} {ratio:>13.2f}")
    if len(sizes) >= 2 and sizes[-1] > 1000:
        for label in ("default", "kept"):
            small = next(r for r in table if r["atoms"] >= 900)
            per_atom = (table[-1][f"{label}_ms"] / table[-1]["atoms"]) / (small[f"{label}_ms"] / small["atoms"])
            print(f"per-atom cost {table[-1]['atoms']} vs {small['atoms']} atoms, {label} allocator: {per_atom:.2f}x")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"preset": args.preset, "threads": 1, "rows": table}, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
