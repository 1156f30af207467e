"""The pipeline's last stage: the validation report (accuracy, NVE, stability, throughput)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from openmm_distill.pipeline.config import ProtocolsSection


def run_protocols(student: str, p: ProtocolsSection, report_dir: Path, log: Callable[[str], None] = print):
    """Run the protocols on ``student`` with the pipeline's (short) settings; returns the ProtocolOutput."""
    from openmm_distill.protocols import AccuracySettings, NVESettings, StabilitySettings, run_report

    nve = NVESettings.quick(length_ps=p.nve_ps, equilibration_ps=p.nve_equilibration_ps,
                            timestep_fs=p.timestep_fs, temperature_k=p.temperature_K)
    stability = StabilitySettings.quick(length_ps=p.stability_ps if p.stability else 0.1,
                                        timestep_fs=p.timestep_fs)
    # Accuracy in the report: fresh geometries of every protocol system, labelled live by the
    # teacher, so each system gets a verdict. The held-out test molecules are
    # evaluated by the trainer at the end of training (test metrics in the student's metadata).
    systems = list(p.systems)
    output = run_report(student, systems, output_dir=report_dir, dataset=None,
                        throughput=p.throughput,
                        throughput_teachers=("gfn2-xtb", "orb-v2") if p.throughput_teachers else (),
                        nve_settings=nve, stability_settings=stability,
                        accuracy_settings=AccuracySettings.quick(), show_progress=True)
    log(f"[protocols] report written to {output.output_dir / 'summary.md'}")
    return output
