"""Energies and forces on the GPU platform against the CPU platform, at the same positions.

The reference is OpenMM's CPU platform with the student on torch's CPU (python backend): nothing of
it touches the GPU. Each backend variant then runs on the checked platform at each precision.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import gpu_systems
import numpy as np

# The float32 tolerance of tests/test_openmm_integration.py::test_platforms_agree: relative energy,
# and forces absolute (kJ/mol/nm) scaled up for large forces.
ENERGY_REL_TOL = 1e-5
FORCE_ABS_TOL = 1e-2
# A comparison starts only with this much of the part's time left (a compile can take most of it).
MIN_SECONDS_PER_ROW = 10.0


def force_tolerance(reference_forces: np.ndarray) -> float:
    return FORCE_ABS_TOL * max(1.0, float(np.abs(reference_forces).max()) / 100.0)


def differences(energy: float, forces: np.ndarray, ref_energy: float, ref_forces: np.ndarray) -> Dict[str, Any]:
    """Energy and force differences from the reference (kJ/mol, kJ/mol/nm), and whether they are within
    the float32 tolerance."""
    e_abs = abs(energy - ref_energy)
    e_rel = e_abs / max(abs(ref_energy), 1e-12)
    f_abs = np.abs(forces - ref_forces)
    f_scale = max(float(np.abs(ref_forces).max()), 1e-12)
    tol = force_tolerance(ref_forces)
    return {"energy_kj_per_mol": energy, "energy_abs_diff": e_abs, "energy_rel_diff": e_rel,
            "force_max_abs_diff": float(f_abs.max()), "force_max_rel_diff": float(f_abs.max()) / f_scale,
            "force_rms_diff": float(np.sqrt(np.mean((forces - ref_forces) ** 2))), "force_abs_tolerance": tol,
            "within_float32_tolerance": bool(e_rel <= ENERGY_REL_TOL and f_abs.max() <= tol)}


def cpu_reference(ts: gpu_systems.TestSystem, student: str) -> Tuple[float, np.ndarray]:
    """Energy and forces on the CPU platform, the student on torch's CPU."""
    system = gpu_systems.student_system(ts, student, "python", device="cpu")
    return gpu_systems.energy_forces(gpu_systems.make_context(ts, system, "CPU"))


def compared_row(ts, student: str, backend: str, graphs: bool, platform_name: str, precision: Optional[str],
                 reference: Tuple[float, np.ndarray]) -> Dict[str, Any]:
    row: Dict[str, Any] = {"student": student, "atoms": ts.atoms, "variant": gpu_systems.variant_name(backend, graphs),
                           "platform": platform_name, "precision": precision or "platform default"}
    try:
        context = gpu_systems.make_context(ts, gpu_systems.student_system(ts, student, backend, graphs), platform_name,
                                           precision)
        row.update(differences(*gpu_systems.energy_forces(context), *reference))
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    return row


def comparisons(variants: Sequence[Tuple[str, bool]], platform_name: str) -> List[Tuple[str, bool, Optional[str]]]:
    """(backend, graphs, precision) to compare: every precision for the python backend (the reference's
    own code on the GPU), the platform's default (mixed) for the other variants."""
    precisions = gpu_systems.platform_precisions(platform_name)
    return [(b, g, p) for b, g in variants for p in (precisions if b == "python" else precisions[:1])]


def run_agreement(log, students: Sequence[str], sizes: Sequence[int], variants: Sequence[Tuple[str, bool]],
                  platform_name: str, seconds_left: Callable[[], float]) -> Dict[str, Any]:
    """Compare every variant, size and student; rows go to ``log.result["rows"]`` as they come.

    Variant by variant (the python backend first, the compiled ones last), so the cheap comparisons of
    every size come before TorchInductor's compilations, and a short budget loses the costly rows first.
    """
    rows: List[Dict[str, Any]] = log.result.setdefault("rows", [])
    references: Dict[Tuple[str, int], Tuple[float, np.ndarray]] = {}
    reference_s = log.result.setdefault("cpu_reference_s", {})
    for backend, graphs, precision in comparisons(variants, platform_name):
        for atoms in sizes:
            for student in students:
                if seconds_left() < MIN_SECONDS_PER_ROW:
                    rows.append({"student": student, "atoms": atoms, "variant": gpu_systems.variant_name(backend, graphs),
                                 "precision": precision, "skipped": "the part's time budget ran out"})
                    log.save()
                    continue
                ts = gpu_systems.test_system(atoms)
                if (student, atoms) not in references:
                    t = time.perf_counter()
                    references[student, atoms] = cpu_reference(ts, student)
                    reference_s[f"{student} @ {atoms}"] = round(time.perf_counter() - t, 3)
                rows.append(compared_row(ts, student, backend, graphs, platform_name, precision,
                                         references[student, atoms]))
                log.save()
    compared = [r for r in rows if "within_float32_tolerance" in r]
    return {"rows": rows, "compared": len(compared),
            "all_within_float32_tolerance": bool(compared) and all(r["within_float32_tolerance"] for r in compared)}
