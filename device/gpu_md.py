"""MD steps per second of students through each backend, and whether a force call captures as a CUDA graph."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import gpu_systems
import torch

from openmm_distill.export.student import load_student
from openmm_distill.export.torchscript import module_from_bytes, module_to_bytes
from openmm_distill.timing import interleaved, ns_per_day
from openmm_distill.units import MS_PER_S

import openmm
from openmm import unit


@dataclass(frozen=True)
class StepSettings:
    """How long each configuration is timed.

    warmup: untimed steps after the first (TorchScript specialises, TorchInductor and CUDA graphs
    record during the first calls); min_time_s and min_blocks: as in ``openmm_distill.timing.interleaved``;
    max_steps: at most this many timed steps.
    """

    warmup: int
    min_time_s: float
    min_blocks: int
    max_steps: int


STEPS = {"small": StepSettings(warmup=2, min_time_s=0.05, min_blocks=2, max_steps=20),
         "full": StepSettings(warmup=20, min_time_s=1.5, min_blocks=5, max_steps=100_000)}
# A configuration starts only with this much of the check's time left (a 5,001-atom Context with an
# inductor compile can take a minute).
MIN_SECONDS_PER_CONFIG = 20.0
MIN_SECONDS_PER_CAPTURE = 5.0


def total_energy_kj_per_mol(context: openmm.Context) -> float:
    state = context.getState(getEnergy=True)
    return (state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole)


def time_steps(context: openmm.Context, settings: StepSettings) -> Dict[str, Any]:
    """First step (set-up, compilation) and the median cost of later steps of a ready Context, and how
    far the total energy moved meanwhile (NVE: wrong forces, say from a stale graph, show as a drift)."""
    integrator = context.getIntegrator()
    start = total_energy_kj_per_mol(context)
    t = time.perf_counter()
    integrator.step(1)
    context.getState(getPositions=True)  # waits for the GPU
    first_step_s = time.perf_counter() - t
    timings = interleaved({"step": lambda: integrator.step(1)}, settings.min_time_s, min_blocks=settings.min_blocks,
                          warmup=settings.warmup, max_calls=settings.max_steps,
                          sync=lambda: context.getState(getPositions=True))
    ms = MS_PER_S * timings["step"]
    end = total_energy_kj_per_mol(context)
    return {"first_step_s": round(first_step_s, 3), "ms_per_step": ms, "steps_per_s": MS_PER_S / ms,
            "ns_per_day": ns_per_day(ms, gpu_systems.TIMESTEP_PS * 1000), "steps_timed": timings.calls["step"],
            "steps_run": context.getStepCount(), "energy_finite_after": math.isfinite(end),
            "total_energy_change_kj_per_mol_per_atom": (end - start) / context.getSystem().getNumParticles()}


def md_row(student: str, atoms: int, backend: str, cuda_graphs: bool, platform_name: str,
           settings: StepSettings) -> Dict[str, Any]:
    """One configuration: build the Context, time it, and say what failed if anything did."""
    ts = gpu_systems.test_system(atoms)
    row: Dict[str, Any] = {"student": student, "atoms": atoms, "system": ts.name,
                           "variant": gpu_systems.variant_name(backend, cuda_graphs), "platform": platform_name}
    t = time.perf_counter()
    try:
        context = gpu_systems.make_context(ts, gpu_systems.student_system(ts, student, backend, cuda_graphs),
                                           platform_name)
        row["context_s"] = round(time.perf_counter() - t, 3)
        row["energy_at_start_kj_per_mol"] = gpu_systems.energy_forces(context)[0]
        row.update(time_steps(context, settings))
        row["status"] = "ok"
    except Exception as exc:  # one configuration's failure is a result, not the end of the part
        row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000])
    row["wall_s"] = round(time.perf_counter() - t, 3)
    return row


def md_configurations(students: Sequence[str], sizes: Sequence[int], variants: Sequence[Tuple[str, bool]],
                      first: Sequence[Tuple[str, int]] = ()) -> List[Tuple[str, int, str, bool]]:
    """Every (student, atoms, backend, graphs): the (student, atoms) in ``first`` (the targets), then the
    rest smallest systems first, so a short budget loses the least wanted rows."""
    every = [(s, n, b, g) for n in sizes for s in students for b, g in variants]
    return sorted(every, key=lambda c: (c[:2] not in first, c[1]))


def run_md_speed(log, students: Sequence[str], sizes: Sequence[int], variants: Sequence[Tuple[str, bool]],
                 unusable: Dict[str, str], platform_name: str, settings: StepSettings,
                 seconds_left: Callable[[], float], first: Sequence[Tuple[str, int]] = ()) -> Dict[str, Any]:
    """Time every configuration, appending rows to ``log.result["rows"]`` (saved after each).

    ``unusable`` maps a backend to why it cannot run here (it gets one "skipped" row per configuration,
    with that reason); configurations are skipped once too little of the check's time is left, the
    (student, atoms) pairs in ``first`` are timed before the others.
    """
    rows: List[Dict[str, Any]] = log.result.setdefault("rows", [])
    for student, atoms, backend, graphs in md_configurations(students, sizes, variants, first):
        base = {"student": student, "atoms": atoms, "variant": gpu_systems.variant_name(backend, graphs)}
        if backend in unusable:
            rows.append({**base, "status": "skipped", "reason": unusable[backend]})
        elif seconds_left() < MIN_SECONDS_PER_CONFIG:
            rows.append({**base, "status": "skipped", "reason": "the check's time budget ran out"})
        else:
            rows.append(md_row(student, atoms, backend, graphs, platform_name, settings))
        log.result["best"] = best_steps_per_s(rows)
        log.save()
        print_row(rows[-1])
    return log.result


def print_row(row: Dict[str, Any]) -> None:
    """One console line per configuration (the device tool returns the log's tail)."""
    outcome = f"{row['steps_per_s']:.1f} steps/s" if row.get("status") == "ok" else \
        f"{row.get('status')}: {row.get('error') or row.get('reason')}"[:160]
    print(f"[gpu_check]   {row['student']} @ {row['atoms']} atoms, {row['variant']}: {outcome}", flush=True)


def best_steps_per_s(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The fastest variant of each student and size: ``{"original @ 21 atoms": {variant, steps_per_s}}``."""
    best: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        if row.get("status") != "ok" or not row.get("energy_finite_after"):
            continue
        key = f"{row['student']} @ {row['atoms']} atoms"
        if key not in best or row["steps_per_s"] > best[key]["steps_per_s"]:
            best[key] = {"variant": row["variant"], "steps_per_s": row["steps_per_s"]}
    return best


# ----------------------------------------------------------------------------- CUDA-graph capture
def cuda_module(student: str, atoms: int) -> Tuple[torch.jit.ScriptModule, torch.Tensor, Optional[torch.Tensor]]:
    """The student's TorchScript module bound to the system's atoms on the GPU, its positions and box (nm)."""
    ts = gpu_systems.test_system(atoms)
    module = module_from_bytes(module_to_bytes(load_student(student).bound_module(ts.atomic_numbers)), "cuda")
    positions = torch.tensor(ts.positions_nm, dtype=torch.float64, device="cuda")
    box = None if ts.box_nm is None else torch.tensor(ts.box_nm, dtype=torch.float64, device="cuda")
    return module, positions, box


def energy_and_gradient(module, positions: torch.Tensor, box: Optional[torch.Tensor]):
    energy = module(positions, box)
    (grad,) = torch.autograd.grad(energy, positions)
    return energy, grad


def capture(module, static_positions: torch.Tensor, box: Optional[torch.Tensor]):
    """Record one energy + gradient call as a CUDA graph (PyTorch's recipe: warm up on a side stream)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            energy_and_gradient(module, static_positions, box)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        energy, grad = energy_and_gradient(module, static_positions, box)
    return graph, energy, grad


def capture_row(student: str, atoms: int, min_time_s: float) -> Dict[str, Any]:
    """Can one force call of the TorchScript student be replayed as a CUDA graph, and does the replay
    follow new positions (or keep the neighbour list of the capture)?"""
    module, positions, box = cuda_module(student, atoms)
    row: Dict[str, Any] = {"student": student, "atoms": atoms}
    static = positions.clone().requires_grad_(True)
    try:
        graph, energy, grad = capture(module, static, box)
    except Exception as exc:
        torch.cuda.synchronize()
        return {**row, "captured": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    row["captured"] = True
    moved = positions + 0.002 * torch.randn(positions.shape, dtype=positions.dtype, device=positions.device,
                                            generator=torch.Generator("cuda").manual_seed(0))
    for label, where in (("same_positions", positions), ("moved_0.002nm", moved)):
        with torch.no_grad():
            static.copy_(where)
        graph.replay()
        e_ref, g_ref = energy_and_gradient(module, where.clone().requires_grad_(True), box)
        row[f"replay_vs_eager_{label}"] = {"energy_abs_diff_kj_per_mol": abs(float(energy) - float(e_ref)),
                                           "force_max_abs_diff": float((grad - g_ref).abs().max())}
    eager_positions = positions.clone().requires_grad_(True)
    timings = interleaved({"eager": lambda: energy_and_gradient(module, eager_positions, box), "replay": graph.replay},
                          min_time_s, sync=torch.cuda.synchronize)
    row.update(eager_ms=MS_PER_S * timings["eager"], replay_ms=MS_PER_S * timings["replay"])
    return row


def run_graph_capture(log, students: Sequence[str], sizes: Sequence[int], min_time_s: float,
                      seconds_left: Callable[[], float]) -> Dict[str, Any]:
    """A capture row per student and size (smallest first), while the part has time left."""
    rows: List[Dict[str, Any]] = log.result.setdefault("rows", [])
    for atoms in sizes:
        for student in students:
            if seconds_left() < MIN_SECONDS_PER_CAPTURE:
                rows.append({"student": student, "atoms": atoms, "skipped": "the part's time budget ran out"})
            else:
                try:
                    rows.append(capture_row(student, atoms, min_time_s))
                except Exception as exc:
                    rows.append({"student": student, "atoms": atoms, "captured": False,
                                 "error": f"{type(exc).__name__}: {exc}"[:2000]})
            log.save()
    return {"rows": rows, "any_captured": any(r.get("captured") for r in rows)}
