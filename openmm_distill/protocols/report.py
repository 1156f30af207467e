"""The validation report: all four protocols on one student, a verdict per system, and the model card.

Verdicts (thresholds in :class:`VerdictThresholds`, stated in every summary):

* **production**: accurate (force R^2 and mean angular error against the
  teacher), conserves energy in NVE to the strict drift threshold, and
  survives NVT at every temperature tested;
* **screening only**: looser accuracy and drift thresholds, and survives NVT
  at the lowest temperature;
* **not recommended**: anything else, including a system a protocol could not run.

The model card is ``<student>.md`` next to the compiled file (for a shipped
student, inside the package); its ``## Validation`` section is replaced (or
appended) and the rest of the card is left as it was.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from openmm_distill.export.student import load_student
from openmm_distill.protocols import environment, openmm_setup, output
from openmm_distill.protocols.accuracy import AccuracySettings, run_accuracy_protocol
from openmm_distill.protocols.nve import NVESettings, run_nve_protocol
from openmm_distill.protocols.output import ProtocolOutput
from openmm_distill.protocols.stability import StabilitySettings, run_stability_protocol
from openmm_distill.protocols.throughput import (
    ThroughputSettings,
    run_throughput_protocol,
)
from openmm_distill.systems.resolve import MolecularSystem, resolve_system, system_specs

PRODUCTION = "production"
SCREENING = "screening only"
NOT_RECOMMENDED = "not recommended"
VERDICTS = (PRODUCTION, SCREENING, NOT_RECOMMENDED)


@dataclass
class VerdictThresholds:
    """Where the verdicts change.

    The production accuracy bar is the original project's usable student
    (force R^2 0.996, 9.6 degrees); its two small students (R^2 0.38 and
    0.15, 49 and 82 degrees) were unusable for MD.

    Attributes
    ----------
    production_min_force_r2, screening_min_force_r2 : float
    production_max_angle_deg, screening_max_angle_deg : float
        Mean angular force error against the teacher, degrees.
    production_max_drift_mev_per_atom_per_ps, screening_max_drift_mev_per_atom_per_ps : float
        ``|NVE drift|``, meV/atom/ps.
    """

    production_min_force_r2: float = 0.99
    production_max_angle_deg: float = 15.0
    production_max_drift_mev_per_atom_per_ps: float = 0.1
    screening_min_force_r2: float = 0.95
    screening_max_angle_deg: float = 30.0
    screening_max_drift_mev_per_atom_per_ps: float = 1.0

    def describe(self) -> str:
        """The thresholds as Markdown bullets."""
        return "\n".join([
            f"- **{PRODUCTION}**: force R² ≥ {self.production_min_force_r2:g} and mean angular error ≤ "
            f"{self.production_max_angle_deg:g}° against the teacher; NVE |drift| ≤ "
            f"{self.production_max_drift_mev_per_atom_per_ps:g} meV/atom/ps; survives NVT at every temperature.",
            f"- **{SCREENING}**: force R² ≥ {self.screening_min_force_r2:g}, angular error ≤ "
            f"{self.screening_max_angle_deg:g}°; NVE |drift| ≤ {self.screening_max_drift_mev_per_atom_per_ps:g} "
            "meV/atom/ps; survives NVT at the lowest temperature.",
            f"- **{NOT_RECOMMENDED}**: anything else (including a protocol that could not run on the system).",
        ])


def system_verdict(accuracy: Optional[Dict[str, Any]], nve: Optional[Dict[str, Any]],
                   stability: Optional[Dict[str, Any]], thresholds: Optional[VerdictThresholds] = None) -> Dict[str, Any]:
    """The verdict of one system from its protocol results.

    Parameters
    ----------
    accuracy : dict or None
        ``{"forces": {"r2", "angle_deg"}, ...}`` (a per-molecule entry of the accuracy metrics).
    nve : dict or None
        An NVE system record (``status``, ``analysis.drift_mev_per_atom_per_ps``).
    stability : dict or None
        A stability system record (``status``, ``runs`` with ``temperature_k`` and ``survived``).

    Returns
    -------
    dict
        ``verdict`` (one of :data:`VERDICTS`), ``production_failures`` and
        ``screening_failures`` (why it missed each level), and the key numbers.
    """
    t = thresholds or VerdictThresholds()
    nan = float("nan")
    r2 = angle = drift = nan
    if accuracy:
        r2 = _num(accuracy.get("forces", {}).get("r2"))
        angle = _num(accuracy.get("forces", {}).get("angle_deg"))
    if nve and nve.get("status") == "ok" and nve.get("analysis"):
        drift = _num(nve["analysis"].get("drift_mev_per_atom_per_ps"))
    runs = (stability or {}).get("runs") or []
    ok_runs = stability is not None and stability.get("status") == "ok" and bool(runs)
    survived_all = ok_runs and all(r["survived"] for r in runs)
    lowest = min(runs, key=lambda r: r["temperature_k"]) if runs else None
    survived_lowest = ok_runs and lowest is not None and lowest["survived"]

    def failures(min_r2: float, max_angle: float, max_drift: float, stable: bool, stable_text: str) -> List[str]:
        out = []
        if accuracy is None:
            out.append("no accuracy data")
        else:
            if not r2 >= min_r2:
                out.append(f"force R² {output.fmt(r2)} < {min_r2:g}")
            if not angle <= max_angle:
                out.append(f"angular error {output.fmt(angle)}° > {max_angle:g}°")
        if nve is None or nve.get("status") != "ok":
            out.append(_not_run("NVE", nve))
        elif not abs(drift) <= max_drift:
            out.append(f"NVE |drift| {output.fmt(abs(drift))} > {max_drift:g} meV/atom/ps")
        if stability is None or not ok_runs:
            out.append(_not_run("NVT", stability))
        elif not stable:
            out.append(stable_text)
        return out

    failed_temps = [f"{r['temperature_k']:g} K" for r in runs if not r["survived"]]
    production = failures(t.production_min_force_r2, t.production_max_angle_deg,
                          t.production_max_drift_mev_per_atom_per_ps, survived_all,
                          f"NVT failed at {', '.join(failed_temps)}")
    screening = failures(t.screening_min_force_r2, t.screening_max_angle_deg,
                         t.screening_max_drift_mev_per_atom_per_ps, survived_lowest,
                         f"NVT failed at {lowest['temperature_k']:g} K" if lowest else "")
    verdict = PRODUCTION if not production else SCREENING if not screening else NOT_RECOMMENDED
    return {"verdict": verdict, "production_failures": production, "screening_failures": screening,
            "force_r2": r2, "angle_deg": angle, "drift_mev_per_atom_per_ps": drift,
            "survived": {f"{r['temperature_k']:g}": r["survived"] for r in runs},
            "time_to_failure_ps": {f"{r['temperature_k']:g}": r.get("time_to_failure_ps") for r in runs}}


def _not_run(what: str, record: Optional[Dict[str, Any]]) -> str:
    """Why a protocol has no usable result for a system, in a few words."""
    if record is None:
        return f"no {what} data"
    message = str(record.get("message") or "").split(":")[0] or "no result"
    return f"{what} {'skipped' if record.get('status') == 'skipped' else 'stopped early'} ({message})"


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


# -- model card ------------------------------------------------------------------------------------

VALIDATION_HEADING = "## Validation"


def model_card_path(student) -> Path:
    """``<student>.md`` next to the compiled file (inside the package for shipped students)."""
    return Path(load_student(student).path).with_suffix(".md")


def replace_section(text: str, heading: str, body: str) -> str:
    """Replace the Markdown section that starts with ``heading`` (up to the next heading of the same
    or a higher level) by ``heading + body``; append it when absent."""
    level = len(heading) - len(heading.lstrip("#"))
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*$.*?(?=^#{{1,{level}}}\s|\Z)", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    return text.rstrip() + ("\n\n" if text.strip() else "") + section


def update_model_card(student, body: str, path: Union[None, str, Path] = None) -> Path:
    """Write ``body`` as the model card's Validation section; create a minimal card if none exists.

    Parameters
    ----------
    student : student name, compiled file or CompiledStudent
    body : str
        Markdown of the section (without its heading).
    path : path, optional
        The card; default :func:`model_card_path`.
    """
    card = Path(path) if path is not None else model_card_path(student)
    if card.is_file():
        text = card.read_text()
    else:
        info = openmm_setup.student_info(student)
        lines = [f"# Model card: {info['name']}", "",
                 f"Compiled student `{Path(info['path']).name}`: {info.get('architecture') or '?'} "
                 f"({info.get('preset') or '?'} preset), {output.fmt(info.get('n_parameters'))} parameters, "
                 f"{info.get('dtype') or '?'}, elements {', '.join(info.get('elements') or [])}, cutoff "
                 f"{info.get('cutoff_angstrom')} Å."]
        text = "\n".join(lines) + "\n"
    card.write_text(replace_section(text, VALIDATION_HEADING, body))
    return card


# -- the report --------------------------------------------------------------------------------

def _by_name(records: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    return {r["system"]["name"]: r for r in records}


def run_report(student, systems: Union[None, str, Sequence[Any]] = None, *, split: Optional[str] = None,
               max_systems: Optional[int] = None, full: bool = False, output_dir: Union[None, str, Path] = None,
               teacher: Optional[str] = None, teacher_weights: Optional[str] = None,
               dataset: Union[None, str, Path] = None, throughput: bool = True,
               throughput_teachers: Sequence[str] = ("gfn2-xtb", "orb-v2"), update_card: bool = True,
               model_card: Union[None, str, Path] = None, thresholds: Optional[VerdictThresholds] = None,
               nve_settings: Optional[NVESettings] = None, stability_settings: Optional[StabilitySettings] = None,
               accuracy_settings: Optional[AccuracySettings] = None,
               throughput_settings: Optional[ThroughputSettings] = None, platform: Optional[str] = None,
               precision: Optional[str] = None, backend: str = "torch", show_progress: bool = True,
               jobs: int = 1, resume: bool = True) -> ProtocolOutput:
    """Run accuracy, NVE, stability and throughput for one student; write one folder and update the model card.

    Parameters
    ----------
    student : student name, compiled file or CompiledStudent
    systems, split, max_systems
        Which systems (see :func:`openmm_distill.systems.resolve.system_specs`).
    full : bool
        Full-length protocols instead of quick ones (unless settings are given).
    output_dir : path, optional
        Default ``runs/protocols/<student>/report``; protocols write to subfolders.
    teacher, teacher_weights, dataset
        Accuracy reference (see :func:`openmm_distill.protocols.accuracy.run_accuracy`).
    throughput : bool
        Include the throughput protocol (student vs ``throughput_teachers`` and amber14).
    update_card : bool
        Replace the Validation section of the model card (``model_card`` or ``<student>.md``).
    jobs : int
        Systems simulated at once in NVE and stability, one worker process each (``student`` a name or path).
    resume : bool
        NVE and stability reuse the systems a killed report of the same student and settings finished.

    Returns
    -------
    ProtocolOutput
        ``report.json`` holds every sub-result's summary numbers and the verdicts.
    """
    loaded = load_student(student)
    thresholds = thresholds or VerdictThresholds()
    mode = "full" if full else "quick"
    pick = (lambda cls: cls.full()) if full else (lambda cls: cls.quick())
    nve_settings = nve_settings or pick(NVESettings)
    stability_settings = stability_settings or pick(StabilitySettings)
    accuracy_settings = accuracy_settings or pick(AccuracySettings)
    output_dir = Path(output_dir) if output_dir is not None else output.default_output_dir("report", loaded)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Resolve once: every protocol sees the same structures (SMILES embedding is seeded, but this is cheaper).
    molsystems: List[MolecularSystem] = [resolve_system(s)
                                         for s in system_specs(systems, split, max_systems)]
    names = [m.name for m in molsystems]
    kw = dict(platform=platform, precision=precision, backend=backend, show_progress=show_progress)

    outputs: Dict[str, ProtocolOutput] = {}
    outputs["accuracy"] = run_accuracy_protocol(
        loaded, names if dataset is not None else molsystems, accuracy_settings, output_dir / "accuracy",
        dataset=dataset, teacher=teacher, teacher_weights=teacher_weights, show_progress=show_progress)
    # Worker processes load the student themselves, by name or path.
    md_model = student if jobs > 1 and isinstance(student, (str, Path)) else loaded
    outputs["nve"] = run_nve_protocol(md_model, molsystems, nve_settings, output_dir / "nve", jobs=jobs,
                                      resume=resume, **kw)
    outputs["stability"] = run_stability_protocol(md_model, molsystems, stability_settings, output_dir / "stability",
                                                  jobs=jobs, resume=resume, **kw)
    if throughput:
        tp_settings = throughput_settings or (ThroughputSettings.full if full else ThroughputSettings.quick)(
            teachers=tuple(throughput_teachers), orb_weights=teacher_weights if teacher == "orb-v2" else None)
        outputs["throughput"] = run_throughput_protocol([loaded], molsystems, tp_settings, output_dir / "throughput",
                                                        **kw)

    accuracy = outputs["accuracy"].results["metrics"]["per_molecule"]
    nve = _by_name(outputs["nve"].results["systems"])
    stability = _by_name(outputs["stability"].results["systems"])
    verdicts = {name: system_verdict(accuracy.get(name), nve.get(name), stability.get(name), thresholds)
                for name in names}
    info = openmm_setup.student_info(loaded)
    payload = {
        "protocol": "report", "mode": mode, "model": info, "systems": [m.describe() for m in molsystems],
        "thresholds": asdict(thresholds), "verdicts": verdicts, "environment": environment.environment_info(),
        "settings": {"nve": asdict(nve_settings), "stability": asdict(stability_settings),
                     "accuracy": asdict(accuracy_settings)},
        "protocols": {k: {"json": str(v.json_path), "summary": str(v.output_dir / "summary.md")}
                      for k, v in outputs.items()},
        "accuracy": {"overall": {k: v for k, v in outputs["accuracy"].results["metrics"].items()
                                 if k not in ("per_molecule", "failures")}, "teacher": outputs["accuracy"].results["teacher"]},
        "throughput": outputs["throughput"].results["rows"] if "throughput" in outputs else None,
        "speedups": outputs["throughput"].results["speedups"] if "throughput" in outputs else None,
    }
    table = verdict_table(molsystems, verdicts, accuracy, stability_settings)
    summary = _report_markdown(info, mode, output_dir, outputs, table, thresholds, nve_settings, stability_settings)
    files = [f for o in outputs.values() for f in o.files]
    result = output.finish("report", output_dir, payload, summary, files)
    if update_card:
        card = update_model_card(loaded, _card_section(mode, output_dir, table, thresholds, outputs), model_card)
        result.results["model_card"] = str(card)
        output.write_json(result.json_path, result.results)
        result.files.append(card)
    return result


def verdict_table(molsystems: Sequence[MolecularSystem], verdicts: Dict[str, Dict[str, Any]],
                  accuracy: Dict[str, Dict[str, Any]], stability_settings: StabilitySettings) -> str:
    """Markdown table: one row per system with the key numbers and its verdict."""
    temps = [f"{t:g}" for t in stability_settings.temperatures_k]
    rows = []
    for m in molsystems:
        v = verdicts[m.name]
        acc = accuracy.get(m.name) or {}
        energy = (acc.get("energy") or {}).get("offset_corrected_mae_mev_per_atom")
        nvt = []
        for t in temps:
            if t not in v["survived"]:
                nvt.append("—")
            elif v["survived"][t]:
                nvt.append("ok")
            else:
                nvt.append(f"failed at {output.fmt(v['time_to_failure_ps'][t])} ps")
        reasons = v["production_failures"] if v["verdict"] == SCREENING else v["screening_failures"] \
            if v["verdict"] == NOT_RECOMMENDED else []
        rows.append([m.name, m.n_atoms, v["force_r2"], v["angle_deg"], energy, v["drift_mev_per_atom_per_ps"],
                     *nvt, f"**{v['verdict']}**", "; ".join(reasons)])
    return output.markdown_table(["system", "atoms", "force R²", "angle (°)", "E MAE offset-corr. (meV/atom)",
                                  "NVE drift (meV/atom/ps)", *[f"NVT {t} K" for t in temps], "verdict", "why not better"],
                                 rows)


def _report_markdown(info: Dict[str, Any], mode: str, output_dir: Path, outputs: Dict[str, ProtocolOutput],
                     table: str, thresholds: VerdictThresholds, nve_settings: NVESettings,
                     stability_settings: StabilitySettings) -> str:
    acc = outputs["accuracy"].results
    overall = acc["metrics"]["forces"]
    teacher = acc["teacher"].get("label") or acc["teacher"].get("name") or "teacher"
    lines = [
        f"# Validation report: {info['name']}", "",
        f"Student `{info.get('path')}`: {info.get('preset') or '?'} preset, {output.fmt(info.get('n_parameters'))} "
        f"parameters, {info.get('dtype')}, elements {', '.join(info.get('elements') or [])}. Mode: **{mode}** "
        f"(NVE {nve_settings.length_ps:g} ps at {nve_settings.timestep_fs:g} fs; NVT {stability_settings.length_ps:g} ps "
        f"per temperature). Teacher for accuracy: {teacher}.", "",
        "## Verdicts", "", table, "", "Thresholds:", "", thresholds.describe(), "",
        f"Overall force accuracy: R² {output.fmt(overall['r2'])}, RMSE {output.fmt(overall['rmse'])} eV/Å, "
        f"mean angular error {output.fmt(overall['angle_deg'])}°.", "",
    ]
    if "throughput" in outputs:
        rows = [r for r in outputs["throughput"].results["rows"] if r["kind"] == "student"]
        lines += ["## Speed", "",
                  output.markdown_table(["system", "atoms", "ms/step", "ns/day"],
                                        [[r["system"], r["n_atoms"], r["ms_per_step"], r["ns_per_day"]] for r in rows]),
                  ""]
        ups = outputs["throughput"].results["speedups"]
        if ups:
            lines += [output.markdown_table(["system", "vs", "speedup"],
                                            [[u["system"], u["reference"], f"{u['speedup']:.3g}x"] for u in ups]), ""]
    lines += ["## Details", ""]
    for name, out in outputs.items():
        rel = out.output_dir.relative_to(output_dir) if out.output_dir.is_relative_to(output_dir) else out.output_dir
        lines.append(f"- {name}: [`{rel}/summary.md`]({rel}/summary.md), `{rel}/{name}.json`")
    return "\n".join(lines)


def _card_section(mode: str, output_dir: Path, table: str, thresholds: VerdictThresholds,
                  outputs: Dict[str, ProtocolOutput]) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    overall = outputs["accuracy"].results["metrics"]["forces"]
    lines = [f"_Written by `openmm-distill protocol report` ({mode} mode) on {date}; full results in "
             f"`{output_dir}`._", "", table, "",
             f"Force accuracy over all systems: R² {output.fmt(overall['r2'])}, mean angular error "
             f"{output.fmt(overall['angle_deg'])}°.", "", "Verdict thresholds:", "", thresholds.describe()]
    return "\n".join(lines)
