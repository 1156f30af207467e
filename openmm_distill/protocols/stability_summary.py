"""The stability protocol's Markdown summary (one row per system and temperature) and overview plot."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

from openmm_distill.protocols import environment, output
from openmm_distill.protocols.plots import plot_sweep

if TYPE_CHECKING:
    from openmm_distill.protocols.stability import StabilitySettings


def summarize_stability(records: Sequence[Dict[str, Any]], settings: StabilitySettings, model_name: str) -> str:
    """Markdown summary, one row per system and temperature, from records (:meth:`StabilityResult.as_dict`)."""
    t = settings.thresholds
    rows = []
    for r in records:
        if r["status"] != "ok":
            rows.append([r["system"]["name"], r["system"]["n_atoms"], "—", "skipped", None, None, None, None,
                         r["message"]])
            continue
        for run in r["runs"]:
            a = run["analysis"] or {}
            rows.append([r["system"]["name"], r["system"]["n_atoms"], f"{run['temperature_k']:g}",
                         "survived" if run["survived"] else "FAILED",
                         run["simulated_ps"] if run["survived"] else run["time_to_failure_ps"],
                         a.get("rmsd_max_angstrom"), a.get("bond_length_max_deviation_angstrom"),
                         run["steps_per_second"], "; ".join(run["failure_reasons"])])
    platform = next((r["platform"] for r in records if r["platform"]), {})
    lines = [
        f"# NVT stability: {model_name}", "",
        f"Langevin dynamics (`LangevinMiddleIntegrator`, friction {settings.friction_per_ps:g}/ps, "
        f"{settings.timestep_fs:g} fs) for {settings.length_ps:g} ps at each of "
        f"{', '.join(f'{x:g}' for x in settings.temperatures_k)} K.",
        environment.platform_sentence(platform), "",
        f"Watchdog every {settings.watchdog_interval_steps} steps: stop on non-finite forces or positions, a force "
        f"above {t.max_force_ev_per_angstrom:g} eV/Å, a starting bond changed by more than "
        f"{t.max_bond_deviation_angstrom:g} Å, or a hydrogen more than {t.max_hydrogen_distance_angstrom:g} Å "
        "from its bonded partner. Bonds come from the topology (or are guessed from the starting geometry).", "",
        output.markdown_table(["system", "atoms", "T (K)", "result", "time survived / to failure (ps)",
                               "max RMSD (Å)", "max bond change (Å)", "steps/s", "failure"], rows),
    ]
    if any(row[3] == "FAILED" for row in rows):
        lines += ["", "Did the student make the failing geometry too easy, or does its teacher allow it? "
                      "`openmm-distill protocol failures <this folder>` tells in seconds per failed run."]
    return "\n".join(lines)


def largest_bond_change(record: Dict[str, Any]) -> Optional[float]:
    """A system's largest bond-length change over all its runs, Å: the larger of the trajectory frames' and the
    watchdog's checks' (the checks come more often than the frames), whichever the record holds."""
    values = []
    for run in record.get("runs") or []:
        analysed = (run.get("analysis") or {}).get("bond_length_max_deviation_angstrom")
        checked = (run.get("series") or {}).get("max_bond_deviation_angstrom") or []
        values += [v for v in [analysed, max((c for c in checked if c is not None), default=None)] if v is not None]
    return max(values, default=None)


def plot_stability_sweep(path: Path, records: Sequence[Dict[str, Any]], settings: StabilitySettings,
                         model_name: str) -> Optional[Path]:
    """Largest bond change of every system against its size, with the watchdog's limit (None for fewer than two)."""
    if len(records) < 2:
        return None
    temperatures = ", ".join(f"{x:g}" for x in settings.temperatures_k)
    return plot_sweep(path, [r["system"]["name"] for r in records], [r["system"]["n_atoms"] for r in records],
                      [largest_bond_change(r) for r in records], [r["survived_all"] for r in records],
                      settings.thresholds.max_bond_deviation_angstrom, ylabel="largest bond change (Å)",
                      title=f"{model_name}: NVT at {temperatures} K, {settings.length_ps:g} ps")
