"""The pipeline's active-learning rounds: explore where the student fails, label it, fine-tune, validate.

A round starts while some molecule's verdict is not "production", fewer than
``loop.max_rounds`` rounds have run, and the budget allows it: the seconds of
every stage so far (including stages an earlier, interrupted run finished) plus
the cost of the last round, as an estimate of the next, must fit in
``loop.budget_minutes``. Round r explores the failing training molecules
(all training molecules when only held-out ones fail: frames of a validation or
test molecule in training would leak it), labels the frames into
``data/explore-r.h5``, fine-tunes the previous round's best checkpoint on the
training data plus every round's frames, and runs the protocols again.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from typing import Dict, List, Optional

from openmm_distill.pipeline.config import exploration_settings
from openmm_distill.pipeline.inputs import Molecule, MoleculeSets
from openmm_distill.pipeline.stages import file_sha256
from openmm_distill.protocols.report import PRODUCTION


def failing(verdicts: Dict[str, str]) -> List[str]:
    """Molecules whose verdict is not production."""
    return [name for name, verdict in verdicts.items() if verdict != PRODUCTION]


def round_record(round_: int, student: str, details: Dict[str, Dict], explored: List[str]) -> Dict[str, object]:
    """What the summary keeps of a round: its student, molecule -> verdict, the verdicts' numbers, what it explored."""
    return {"round": round_, "student": student, "verdicts": {n: v["verdict"] for n, v in details.items()},
            "details": details, "explored": explored}


def run_loop(pipeline, sets: MoleculeSets, systems: List[Molecule], data: Dict[str, Optional[str]],
             checkpoint: str) -> None:
    """Run rounds 1, 2, ... on ``pipeline`` (a :class:`~.runner.Pipeline`); records them and the stop reason."""
    cfg, result = pipeline.cfg, pipeline.result
    budget_s = None if cfg.loop.budget_minutes is None else 60.0 * cfg.loop.budget_minutes
    explored: List[str] = []
    round_ = 0
    while True:
        bad = failing(result.rounds[-1]["verdicts"])
        last_round_s = _round_seconds(result.costs, round_)
        if not bad:
            result.stop_reason = f"every molecule is {PRODUCTION} after round {round_}"
            break
        if round_ >= cfg.loop.max_rounds:
            result.stop_reason = f"loop.max_rounds = {cfg.loop.max_rounds} reached"
            break
        if budget_s is not None and pipeline.spent + last_round_s > budget_s:
            result.stop_reason = (f"loop.budget_minutes = {cfg.loop.budget_minutes:g} would be exceeded: "
                                  f"{pipeline.spent / 60:.1f} min spent, the last round took {last_round_s / 60:.1f} min")
            break
        round_ += 1
        targets = [m for m in sets.train if m[0] in bad] or list(sets.train)
        pipeline.log(f"[round {round_}] not yet {PRODUCTION}: {', '.join(bad)}; exploring "
                     f"{', '.join(n for n, _ in targets)}")
        explored.append(explore_and_label(pipeline, round_, result.rounds[-1]["student"], targets))
        train_h5 = merge(pipeline, round_, [data["train"]] + explored)
        student, checkpoint = pipeline.train(round_, train_h5, data, checkpoint)
        details = pipeline.protocols(round_, student, systems)
        result.rounds.append(round_record(round_, student, details, [n for n, _ in targets]))
    pipeline.log(f"[loop] stopped: {result.stop_reason}")


def _round_seconds(costs: List[Dict[str, object]], round_: int) -> float:
    """Seconds of the stages of one round (round 0: training and protocols, the part a later round repeats)."""
    if round_ == 0:
        names = {"train", "protocols"}
    else:
        names = {f"{kind}-{round_}" for kind in ("explore", "merge", "train", "protocols")}
    return sum(float(c["seconds"]) for c in costs if c["stage"] in names)


def explore_and_label(pipeline, round_: int, student: str, molecules: List[Molecule]) -> str:
    """Stage ``explore-<round>``: hot MD with ``student`` on ``molecules``, frames labelled into a dataset.

    Each molecule's frames are cached (``data/explore-<round>.explored/``) until labelled, so that a
    killed run explores only the molecules not yet done, or resumes the labelling.
    """
    from openmm_distill.active_learning.exploration import explore_resumable
    from openmm_distill.data.labelling import label

    cfg = pipeline.cfg
    path = pipeline.out / "data" / f"explore-{round_}.h5"
    cache_dir = path.with_suffix(".explored")
    settings = exploration_settings(cfg)
    header = json.loads(json.dumps({"student": file_sha256(student), "molecules": molecules,
                                    "settings": {k: v for k, v in vars(settings).items() if k != "thresholds"}}))
    inputs = dict(header, teacher=cfg.teacher.name, teacher_options=cfg.teacher.options)

    def run():
        path.parent.mkdir(parents=True, exist_ok=True)
        result = explore_resumable(student, molecules, settings, str(cache_dir), header, jobs=cfg.workers,
                                   show_progress=False, log=lambda message: pipeline.log(f"[explore-{round_}] {message}"))
        pipeline.log(f"[explore-{round_}] {result.summary()}")
        # Keys name the round: every round's student is called "student", and merged files need unique keys.
        geometries = [replace(g, key=g.key.replace("/explore/", f"/explore-{round_}/", 1)) for g in result.geometries]
        (path.with_suffix(".runs.json")).write_text(json.dumps(result.runs_as_dicts(), indent=1))
        report = label(geometries, str(path), teacher=cfg.teacher.name, teacher_options=cfg.teacher.options,
                       n_workers=cfg.workers, resume=True, overwrite=True, progress=False,
                       creation_command=f"openmm-distill pipeline ({cfg.name}: explore round {round_})")
        pipeline.log(f"[explore-{round_}] labelled {report.n_structures_total} geometries, "
                     f"{report.n_failed_total} teacher failures")
        shutil.rmtree(cache_dir)
        return {"dataset": str(path)}

    return pipeline.stage(f"explore-{round_}", inputs, run)["dataset"]


def merge(pipeline, round_: int, datasets: List[str]) -> str:
    """Stage ``merge-<round>``: the labelled molecules plus every round's explored frames, in one file."""
    from openmm_distill.data.merge import merge_datasets

    path = pipeline.out / "data" / f"train-{round_}.h5"

    def run():
        merge_datasets(datasets, str(path), overwrite=True,
                       creation_command=f"openmm-distill pipeline ({pipeline.cfg.name}: round {round_} training data)")
        return {"dataset": str(path)}

    return pipeline.stage(f"merge-{round_}", {"datasets": [file_sha256(d) for d in datasets]}, run)["dataset"]
