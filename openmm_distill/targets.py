"""Accuracy targets a student must meet against its teacher, per preset.

A student is ready for MD when it meets every target of its preset on
held-out molecules (``openmm-distill evaluate --split test``). The bars are
set so that the original-size student clears what the original project's
best student reached (force R^2 0.996, angular error 9.6 degrees) and the
small students stay usable for MD (the original project's small students,
R^2 0.38 and 0.15, were not).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional


@dataclass(frozen=True)
class Targets:
    """Thresholds; units: force MAE eV/Angstrom, angle degrees, energy MAE meV/atom."""

    force_r2_min: float
    force_mae_max: float
    angle_deg_max: float
    energy_mae_mev_per_atom_max: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


TARGETS: Dict[str, Targets] = {
    "original": Targets(force_r2_min=0.99, force_mae_max=0.08, angle_deg_max=8.0, energy_mae_mev_per_atom_max=5.0),
    "tiny": Targets(force_r2_min=0.98, force_mae_max=0.12, angle_deg_max=12.0, energy_mae_mev_per_atom_max=8.0),
    "ultra-tiny": Targets(force_r2_min=0.95, force_mae_max=0.20, angle_deg_max=20.0, energy_mae_mev_per_atom_max=15.0),
}

# On the blind set (molecules nobody chose, docs/chemistry.md; issue #15): metric -> ("min"/"max", bound).
BLIND_TARGETS: Dict[str, Dict[str, tuple]] = {
    "original": {"force_r2": ("min", 0.99), "force_mae": ("max", 0.06), "energy_mae_mev_per_atom": ("max", 5.0)},
    "tiny": {"force_r2": ("min", 0.98)},
    "ultra-tiny": {"force_r2": ("min", 0.96)},
}

# Against a foundation-model teacher (issue #16: SevenNet-0), on the test split and the blind set alike; the
# metrics not named keep the preset's bars. metric -> ("min"/"max", bound), per teacher and preset.
TEACHER_TARGETS: Dict[str, Dict[str, Dict[str, tuple]]] = {
    "sevennet": {
        "original": {"force_r2": ("min", 0.995), "energy_mae_mev_per_atom": ("max", 3.0)},
        "tiny": {"force_r2": ("min", 0.99)},
    },
}


def blind_targets(preset: Optional[str], teacher: str = "gfn2-xtb") -> Dict[str, tuple]:
    """The blind-set targets of a preset distilled from ``teacher`` (a registry name): metric -> (kind, bound)."""
    return TEACHER_TARGETS.get(teacher, BLIND_TARGETS).get(preset or "", {})


# metric name -> (targets attribute, "min" or "max", label)
_CHECKS = (
    ("force_r2", "force_r2_min", "min", "force R^2"),
    ("force_mae", "force_mae_max", "max", "force MAE (eV/A)"),
    ("angle_deg", "angle_deg_max", "max", "mean angular error (deg)"),
    ("energy_mae_mev_per_atom", "energy_mae_mev_per_atom_max", "max", "energy MAE (meV/atom)"),
)
METRIC_LABELS: Dict[str, str] = {metric: label for metric, _, _, label in _CHECKS}


def targets_for(preset: Optional[str], teacher: str = "gfn2-xtb") -> Optional[Targets]:
    """The targets of a preset distilled from ``teacher`` (a registry name), or None for unknown/absent presets."""
    base = TARGETS.get(preset) if preset else None
    tighter = TEACHER_TARGETS.get(teacher, {}).get(preset or "", {})
    if base is None or not tighter:
        return base
    attrs = {metric: attr for metric, attr, _, _ in _CHECKS}
    return replace(base, **{attrs[metric]: bound for metric, (_, bound) in tighter.items()})


def check_targets(metrics: Dict[str, float], preset: Optional[str],
                  teacher: str = "gfn2-xtb") -> Dict[str, Dict[str, object]]:
    """Compare metrics with a preset's targets.

    Parameters
    ----------
    metrics : dict
        At least ``force_r2``, ``force_mae`` (eV/Angstrom), ``angle_deg`` and
        ``energy_mae_mev_per_atom`` (see :mod:`openmm_distill.metrics`).
    preset : str or None

    Returns
    -------
    dict
        metric name -> ``{"label", "value", "target", "kind" ("min"/"max"), "passed" (bool or None)}``;
        ``target`` and ``passed`` are None when the preset has no targets. A NaN value fails.
    """
    t = targets_for(preset, teacher)
    out: Dict[str, Dict[str, object]] = {}
    for metric, attr, kind, label in _CHECKS:
        value = float(metrics.get(metric, float("nan")))
        target = getattr(t, attr) if t is not None else None
        passed = None
        if target is not None:
            passed = bool(value >= target) if kind == "min" else bool(value <= target)
        out[metric] = {"label": label, "value": value, "target": target, "kind": kind, "passed": passed}
    return out
