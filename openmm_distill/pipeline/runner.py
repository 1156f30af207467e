"""The main job: molecules -> labels -> a fine-tuned student -> protocols -> active learning -> summary.

Round 0 labels the user's molecules with the teacher, fine-tunes the starting
student (:mod:`.start`: by default the shipped student of the recipe's size) and
runs the protocols on every molecule. Each later round (:mod:`.loop`) explores
the molecules that are not yet "production" with the student itself, labels
what it found, fine-tunes again and validates again, until every molecule is
"production", ``loop.max_rounds`` is reached or ``loop.budget_minutes`` is spent.

Each stage runs only when its inputs changed since its last successful run
(content hashes, see :mod:`openmm_distill.pipeline.stages`), so a rerun after a
crash or a config edit redoes only what changed, round by round.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from openmm_distill.errors import ConfigError
from openmm_distill.pipeline.config import PipelineConfig, resolve
from openmm_distill.pipeline.inputs import Molecule, MoleculeSets, check_elements, collect_molecules, read_molecules
from openmm_distill.pipeline.stages import StageStore, file_sha256, stage_key

# Stage kinds, in the order they first run; a stage of round r > 0 is named "<kind>-<r>".
STAGES = ["label-train", "label-validation", "label-test", "start", "train", "protocols", "explore", "merge"]


def stage_kind(name: str) -> str:
    """``train-2`` -> ``train`` (the kind ``--force`` names)."""
    return re.sub(r"-\d+$", "", name)


@dataclass
class PipelineResult:
    """What a pipeline run produced.

    Attributes
    ----------
    student : pathlib.Path
        The final compiled student (``<output_dir>/student.pt``, a copy of the best round's).
    report : pathlib.Path
        The pipeline summary (``<output_dir>/summary.md``).
    verdicts : dict
        Molecule name -> verdict of the final student.
    rounds : list of dict
        Per round: the verdicts, the student and the molecules explored.
    stop_reason : str
        Why the loop stopped.
    costs : list of dict
        Per stage: name, seconds, and whether it ran or was up to date.
    """

    output_dir: Path
    ran: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    student: Optional[Path] = None
    report: Optional[Path] = None
    summary: Dict[str, object] = field(default_factory=dict)
    verdicts: Dict[str, str] = field(default_factory=dict)
    rounds: List[Dict[str, object]] = field(default_factory=list)
    stop_reason: str = ""
    costs: List[Dict[str, object]] = field(default_factory=list)


class Pipeline:
    """One pipeline run over the stages of :data:`STAGES` (``force``: stage kinds to rerun anyway)."""

    def __init__(self, config: PipelineConfig, log: Callable[[str], None] = print, force: Sequence[str] = ()):
        unknown = [s for s in force if s not in STAGES + ["all"]]
        if unknown:
            raise ConfigError(f"--force stage(s) {unknown} unknown; stages are {STAGES} (or 'all')")
        self.cfg = config
        self.out = Path(config.output_dir)
        self.store = StageStore(self.out)
        self.log = log
        self.force = set(STAGES if "all" in force else force)
        self.result = PipelineResult(self.out)
        # Seconds of every stage of this pipeline, run now or recorded by an earlier run (the loop's budget).
        self.spent = 0.0

    # -- helpers ---------------------------------------------------------------------------------
    def stage(self, name: str, inputs: Dict, run: Callable[[], Dict[str, str]]) -> Dict[str, str]:
        """``run()``'s output files, from the record of an earlier run when ``inputs`` and the files are unchanged."""
        key = stage_key(name, inputs)
        if stage_kind(name) not in self.force and self.store.up_to_date(name, key):
            seconds = float((self.store.load(name) or {}).get("seconds", 0.0))
            self.log(f"[{name}] up to date, skipped")
            self.result.skipped.append(name)
            self._cost(name, seconds, ran=False)
            return self.store.outputs(name)
        self.log(f"[{name}] running")
        start = time.perf_counter()
        outputs = run()
        seconds = time.perf_counter() - start
        self.store.save(name, key, outputs, seconds)
        self.log(f"[{name}] done in {seconds:.0f} s")
        self.result.ran.append(name)
        self._cost(name, seconds, ran=True)
        return outputs

    def _cost(self, name: str, seconds: float, ran: bool) -> None:
        self.spent += seconds
        self.result.costs.append({"stage": name, "seconds": round(seconds, 1), "ran": ran})

    def label(self, role: str, mols: List[Molecule], sampling: Dict) -> Optional[str]:
        """Sample and label ``mols`` into ``data/<role>.h5`` (stage ``label-<role>``)."""
        if not mols:
            return None
        from openmm_distill.data.labelling import label

        cfg = self.cfg
        path = self.out / "data" / f"{role}.h5"
        inputs = {"molecules": mols, "sampling": sampling, "teacher": cfg.teacher.name,
                  "teacher_options": cfg.teacher.options}

        def run():
            path.parent.mkdir(parents=True, exist_ok=True)
            report = label(mols, str(path), sampling=sampling or None, teacher=cfg.teacher.name,
                           teacher_options=cfg.teacher.options, n_workers=cfg.workers, resume=True,
                           overwrite=True, creation_command=f"openmm-distill pipeline ({cfg.name}: {role})")
            self.log(f"[label-{role}] {report.n_structures_total} structures, {report.n_failed_total} teacher failures")
            return {"dataset": str(path)}

        return self.stage(f"label-{role}", inputs, run)["dataset"]

    # -- stages ----------------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        from openmm_distill.pipeline.loop import round_record, run_loop
        from openmm_distill.pipeline.start import starting_student

        cfg = self.cfg
        sets = collect_molecules(cfg.molecules, cfg.base_dir)
        self.log(f"pipeline {cfg.name!r}: {sets.describe()}; teacher {cfg.teacher.name}, output {self.out}")
        # Check the recipe, its overrides and the starting student now: a bad key or an element the
        # student does not know fails here, before any labelling.
        _, tcfg = self._training_config(0, "unlabelled-yet.h5", None, None, None)
        if cfg.loop.max_rounds:
            self._training_config(1, "unlabelled-yet.h5", None, None, None)  # loop.set too
        systems = read_molecules(cfg.protocols.systems, cfg.base_dir) if cfg.protocols.systems else sets.all()
        start = starting_student(cfg.training.init_from, tcfg.model.preset,
                                 {"name": cfg.teacher.name, "options": cfg.teacher.options})
        if start is not None:
            check_elements(sets.all() + systems, start.elements, start.label)
            self.log(f"starting student: {start.label} (fine-tuned on these molecules)")
        else:
            self.log(f"starting student: none (training.init_from: scratch, preset {tcfg.model.preset!r})")

        data = self._label_all(sets)
        init = self._start(start)
        student, checkpoint = self.train(0, data["train"], data, init)
        self.result.rounds.append(round_record(0, student, self.protocols(0, student, systems), []))
        run_loop(self, sets, systems, data, checkpoint)
        self._finish(sets, start)
        return self.result

    def _label_all(self, sets: MoleculeSets) -> Dict[str, Optional[str]]:
        """The training, validation and test datasets; held-out geometries when no molecule is held out."""
        cfg = self.cfg
        evaluation = dict(cfg.evaluation_sampling or cfg.sampling)
        if sets.held_out:
            # Same molecules, other seeds: other conformers and MD trajectories than training saw,
            # and validation and test differ from each other too.
            seed = int(evaluation.get("seed", 0))
            validation = dict(evaluation, seed=seed + 101)
            test = dict(evaluation, seed=seed + 202)
            roles = {"validation": (sets.train, validation), "test": (sets.train, test)}
        else:
            roles = {"validation": (sets.validation, evaluation), "test": (sets.test, evaluation)}
        data = {"train": self.label("train", sets.train, cfg.sampling)}
        for role, (mols, sampling) in roles.items():
            data[role] = self.label(role, mols, sampling)
        return data

    def _start(self, start) -> Optional[str]:
        """The starting student's file, copied into the run (stage ``start``); None from scratch."""
        if start is None:
            return None
        from openmm_distill.pipeline.start import snapshot

        path = self.out / "start" / "start.pt"
        inputs = {"source": file_sha256(start.path), "compiled": start.compiled}
        return self.stage("start", inputs, lambda: {"checkpoint": str(snapshot(start, path))})["checkpoint"]

    def _training_config(self, round_: int, train_h5: str, val_h5: Optional[str], test_h5: Optional[str],
                         init: Optional[str]):
        from openmm_distill.training import load_config

        recipe = resolve(self.cfg, self.cfg.training.recipe)
        settings = dict(self.cfg.training.set)
        if round_ > 0:
            settings.update(self.cfg.loop.set)
        overrides = [f"{k}={v}" for k, v in settings.items()]
        overrides += [f"data.path={train_h5}", f"run.output_dir={self.train_dir(round_)}",
                      f"data.validation_path={val_h5 or 'null'}", f"data.test_path={test_h5 or 'null'}"]
        if init:
            overrides.append(f"model.init_from={init}")
        return recipe, load_config(recipe, overrides)

    def train_dir(self, round_: int) -> Path:
        return self.out / ("train" if round_ == 0 else f"train-{round_}")

    def train(self, round_: int, train_h5: str, data: Dict[str, Optional[str]], init: Optional[str]):
        """Train (fine-tune from ``init``) and compile; returns (compiled student, best checkpoint)."""
        from openmm_distill.training import finish_run, train

        val_h5, test_h5 = data.get("validation"), data.get("test")
        name = "train" if round_ == 0 else f"train-{round_}"
        run_dir = self.train_dir(round_)
        recipe, tcfg = self._training_config(round_, train_h5, val_h5, test_h5, init)
        inputs = {"recipe": Path(recipe).read_text(), "set": self.cfg.training.set,
                  "loop_set": self.cfg.loop.set if round_ else None, "init": init and file_sha256(init),
                  "train": file_sha256(train_h5), "validation": val_h5 and file_sha256(val_h5),
                  "test": test_h5 and file_sha256(test_h5)}

        def run():
            key = stage_key(name, inputs)
            resume = (run_dir / "last.pt").is_file() and (run_dir / "stage_key").is_file() and \
                (run_dir / "stage_key").read_text() == key
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "stage_key").write_text(key)
            result = finish_run(train(tcfg, resume=resume, overwrite=not resume))  # compile: the caller's step
            if result.compiled_path is None:
                raise ConfigError("training finished without a compiled student (run.compile is off?)")
            (run_dir / "metrics.json").write_text(json.dumps(
                {"validation": result.best_metrics, "test": result.test_metrics}, indent=1, default=float))
            return {"student": str(result.compiled_path), "checkpoint": str(run_dir / "best.pt")}

        outputs = self.stage(name, inputs, run)
        metrics_file = run_dir / "metrics.json"
        if metrics_file.is_file():
            self.result.summary.update(json.loads(metrics_file.read_text()))
        return outputs["student"], outputs["checkpoint"]

    def protocols(self, round_: int, student: str, systems: List[Molecule]) -> Dict[str, Dict]:
        """The validation report of ``student`` on ``systems``; returns molecule -> verdict record
        (``verdict``, ``force_r2``, ``angle_deg``, ... of :func:`openmm_distill.protocols.report.system_verdict`)."""
        from openmm_distill.pipeline.protocol_stage import run_protocols

        p = self.cfg.protocols
        name = "protocols" if round_ == 0 else f"protocols-{round_}"
        report_dir = self.out / ("report" if round_ == 0 else f"report-{round_}")
        inputs = {"student": file_sha256(student), "protocols": vars(p), "systems": systems,
                  "teacher": self.cfg.teacher.name, "teacher_options": self.cfg.teacher.options}

        def run():
            run_protocols(student, p, report_dir, systems, teacher=self.cfg.teacher.name,
                          teacher_options=self.cfg.teacher.options, jobs=self.cfg.workers, log=self.log)
            return {"report": str(report_dir / "summary.md"), "json": str(report_dir / "report.json")}

        outputs = self.stage(name, inputs, run)
        report = json.loads(Path(outputs["json"]).read_text())
        self.log(f"[{name}] verdicts: " + ", ".join(f"{n}: {v['verdict']}" for n, v in report["verdicts"].items()))
        return report["verdicts"]

    # -- the end ---------------------------------------------------------------------------------
    def _finish(self, sets: MoleculeSets, start) -> None:
        """Keep the best round's student as ``<output_dir>/student.pt`` and write the summary."""
        from openmm_distill.pipeline.summary import best_round, write_summary

        best = best_round(self.result.rounds)
        final = self.out / "student.pt"
        source = Path(best["student"])
        if not final.is_file() or file_sha256(final) != file_sha256(source):
            shutil.copyfile(source, final)
        card = source.with_suffix(".md")
        if card.is_file():
            shutil.copyfile(card, final.with_suffix(".md"))
        self.result.student = final
        self.result.verdicts = dict(best["verdicts"])
        self.result.summary["best_round"] = best["round"]
        self.result.report = write_summary(self, sets, start, best)


def run_pipeline(config: PipelineConfig, log: Callable[[str], None] = print, force: Sequence[str] = ()) -> PipelineResult:
    """Run (or bring up to date) every stage of the pipeline described by ``config``."""
    return Pipeline(config, log=log, force=force).run()
