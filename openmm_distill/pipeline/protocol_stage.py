"""The pipeline's validation stage: the protocols' report (accuracy, NVE, stability, throughput) per molecule."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from openmm_distill.pipeline.config import ProtocolsSection


def protocol_system(name: str, smiles: str):
    """The protocols' system of a pipeline molecule: a 3D structure from its SMILES, under the pipeline's name."""
    from openmm_distill.systems.resolve import resolve_system

    return replace(resolve_system(smiles), name=name)


def run_protocols(student: str, p: ProtocolsSection, report_dir: Path, systems: List[Tuple[str, str]], *,
                  teacher: str, teacher_options: Optional[Dict[str, Any]] = None, jobs: int = 1,
                  log: Callable[[str], None] = print):
    """Run the protocols on ``student`` for the ``(name, smiles)`` molecules; returns the ProtocolOutput.

    The lengths are the config's (default: the protocols' quick mode). Accuracy is measured on
    fresh geometries of every molecule, labelled live by the pipeline's teacher, so each molecule
    gets a verdict; the held-out datasets are evaluated by the trainer (test metrics in the
    student's metadata).
    """
    from openmm_distill.protocols import AccuracySettings, NVESettings, StabilitySettings, run_report

    nve = NVESettings.quick(length_ps=p.nve_ps, equilibration_ps=p.nve_equilibration_ps,
                            timestep_fs=p.timestep_fs, temperature_k=p.temperature_K)
    stability = StabilitySettings.quick(length_ps=p.stability_ps if p.stability else 0.1,
                                        timestep_fs=p.timestep_fs)
    reference: Any = teacher
    if teacher_options:
        from openmm_distill.teachers import get_teacher

        reference = get_teacher(teacher, **teacher_options)
    molsystems = [protocol_system(name, smiles) for name, smiles in systems]
    output = run_report(student, molsystems, output_dir=report_dir, dataset=None, teacher=reference,
                        throughput=p.throughput,
                        throughput_teachers=("gfn2-xtb", "orb-v2") if p.throughput_teachers else (),
                        nve_settings=nve, stability_settings=stability,
                        accuracy_settings=AccuracySettings.quick(), show_progress=False, jobs=jobs)
    log(f"[protocols] report written to {output.output_dir / 'summary.md'}")
    return output
