"""The pipeline's summary: which molecule reached which verdict in each round, and what each stage cost."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from openmm_distill.protocols.report import PRODUCTION, VERDICTS


def best_round(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The round whose student has the most molecules at the best verdicts (the later round on a tie)."""
    def score(r: Dict[str, Any]):
        counts = [sum(v == verdict for v in r["verdicts"].values()) for verdict in VERDICTS[:-1]]
        return (*counts, r["round"])

    return max(rounds, key=score)


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # A "|" inside a cell (as in "NVE |drift|") would end the cell.
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return "-"


def write_summary(pipeline, sets, start, best: Dict[str, Any]) -> Path:
    """Write ``summary.md`` and ``summary.json`` in the output folder; returns the Markdown path."""
    result, cfg, out = pipeline.result, pipeline.cfg, pipeline.out
    rounds = result.rounds
    names = list(rounds[0]["verdicts"])
    n_production = sum(v == PRODUCTION for v in best["verdicts"].values())
    total_s = sum(float(c["seconds"]) for c in result.costs)
    lines = [
        f"# Pipeline {cfg.name!r}", "",
        f"Student: `{result.student}` (round {best['round']} of {len(rounds) - 1}; "
        f"{n_production}/{len(names)} molecules {PRODUCTION}). Use it with "
        f"`openmm_distill.create_system(topology, {str(result.student)!r})`.", "",
        f"- Molecules: {sets.describe()}.",
        f"- Teacher: {cfg.teacher.name}. Starting student: "
        f"{start.label + ', fine-tuned' if start is not None else 'none (trained from scratch)'}.",
        f"- Loop: {result.stop_reason}.",
        f"- Time: {total_s / 60:.1f} min in stages ({sum(c['ran'] for c in result.costs)} run now, "
        f"{sum(not c['ran'] for c in result.costs)} up to date).", "",
        "## Verdicts per round", "",
        *_table(["molecule"] + [f"round {r['round']}" for r in rounds],
                [[n] + [r["verdicts"].get(n, "-") for r in rounds] for n in names]), "",
        f"## The student of round {best['round']}", "",
        *_table(["molecule", "force R²", "angle (°)", "NVE drift (meV/atom/ps)", "NVT survived", "verdict",
                 f"why not {PRODUCTION}"],
                [[n, _fmt(d.get("force_r2")), _fmt(d.get("angle_deg")), _fmt(d.get("drift_mev_per_atom_per_ps")),
                  ", ".join(f"{t} K" for t, ok in (d.get("survived") or {}).items() if ok) or "-",
                  f"**{d['verdict']}**", "; ".join(d.get("production_failures") or [])]
                 for n, d in best["details"].items()]), "",
        "Round 0 is the starting student fine-tuned on the labelled molecules; each later round explored the "
        "molecules listed below with the student, labelled those geometries and fine-tuned again.", "",
        *[f"- round {r['round']}: explored {', '.join(r['explored'])}" for r in rounds[1:]],
        "", "## Cost per stage", "",
        *_table(["stage", "seconds", "this run"],
                [[c["stage"], f"{float(c['seconds']):.0f}", "ran" if c["ran"] else "up to date"] for c in result.costs]),
        "",
        f"Reports: `{out / 'report'}` (round 0)" + "".join(f", `{out / f'report-{r}'}`" for r in range(1, len(rounds))),
    ]
    if result.summary.get("test"):
        test = result.summary["test"]
        lines += ["", "Held-out test set of the last trained student: " + ", ".join(
            f"{k} {v:.4g}" for k, v in test.items() if isinstance(v, float)) + "."]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    payload = {"name": cfg.name, "student": str(result.student), "best_round": best["round"],
               "verdicts": best["verdicts"], "held_out_geometries": sets.held_out,
               "molecules": {"train": sets.train, "validation": sets.validation, "test": sets.test},
               "starting_student": None if start is None else start.label, "stop_reason": result.stop_reason,
               "rounds": [dict(r, student=str(r["student"])) for r in rounds],
               "costs": result.costs, "total_seconds": round(total_s, 1), "metrics": result.summary}
    (out / "summary.json").write_text(json.dumps(payload, indent=1, default=float))
    return path
