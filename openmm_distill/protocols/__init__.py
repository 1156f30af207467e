"""Validation protocols: is a compiled student good enough to trust in MD?

Four measurements and a report, each a function that writes JSON (machines),
PNG (people) and a short Markdown summary into an output folder:

* :func:`run_nve_protocol` -- energy conservation in NVE (drift in meV/atom/ps);
* :func:`run_throughput_protocol` -- MD steps/s and ns/day of students, teachers and amber14;
* :func:`run_accuracy_protocol` -- forces and energies against the teacher;
* :func:`run_stability_protocol` -- NVT at 300 and 500 K under a watchdog;
* :func:`run_report` -- all four, a verdict per system, and the model card's Validation section.

Each has ``*Settings.quick()`` (about two minutes on two CPU cores for the
default systems) and ``*Settings.full()``. The lower-level pieces
(:func:`run_nve`, :func:`analyse_energy_series`, :class:`Watchdog`,
:func:`force_metrics`, ...) accept any OpenMM System, Simulation or arrays, so
they can check other potentials too.

>>> import openmm_distill as od                                    # doctest: +SKIP
>>> from openmm_distill.protocols import run_nve_protocol, NVESettings
>>> out = run_nve_protocol("tiny", "ethanol,aspirin", NVESettings.quick())   # doctest: +SKIP
>>> print(out.summary)                                             # doctest: +SKIP
"""
from openmm_distill.md.watchdog import Watchdog, WatchdogThresholds
from openmm_distill.protocols.accuracy import (
    AccuracySettings,
    run_accuracy,
    run_accuracy_protocol,
    sample_geometries,
)
from openmm_distill.protocols.accuracy_metrics import energy_metrics, force_metrics, percentile_summary
from openmm_distill.protocols.drift import DriftAnalysis, analyse_energy_series
from openmm_distill.protocols.nve import (
    EnergySeries,
    NVEResult,
    NVESettings,
    nve_energy_series,
    run_nve,
    run_nve_protocol,
)
from openmm_distill.protocols.output import ProtocolOutput
from openmm_distill.protocols.report import (
    VERDICTS,
    VerdictThresholds,
    run_report,
    system_verdict,
    update_model_card,
)
from openmm_distill.protocols.stability import (
    StabilityResult,
    StabilitySettings,
    run_stability,
    run_stability_protocol,
)
from openmm_distill.protocols.throughput import (
    ThroughputSettings,
    run_throughput,
    run_throughput_protocol,
)
from openmm_distill.systems.resolve import (
    DEFAULT_SYSTEMS,
    MolecularSystem,
    resolve_system,
    system_specs,
)

PROTOCOLS = ("nve", "throughput", "accuracy", "stability", "report")

__all__ = [
    "AccuracySettings", "DEFAULT_SYSTEMS", "DriftAnalysis", "EnergySeries", "MolecularSystem", "NVEResult",
    "NVESettings", "PROTOCOLS", "ProtocolOutput", "StabilityResult", "StabilitySettings", "ThroughputSettings",
    "VERDICTS", "VerdictThresholds", "Watchdog", "WatchdogThresholds", "analyse_energy_series", "energy_metrics",
    "force_metrics", "nve_energy_series", "percentile_summary", "resolve_system", "run_accuracy",
    "run_accuracy_protocol", "run_nve", "run_nve_protocol", "run_report", "run_stability", "run_stability_protocol",
    "run_throughput", "run_throughput_protocol", "sample_geometries", "system_specs", "system_verdict",
    "update_model_card",
]
