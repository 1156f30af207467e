"""The main job: molecules -> sampling -> teacher labels -> training -> compile -> protocols -> report.

Each stage runs only when its inputs changed since its last successful run
(content hashes, see :mod:`openmm_distill.pipeline.stages`), so a rerun after a
crash or a config edit redoes only what changed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from openmm_distill.pipeline.config import PipelineConfig, resolve
from openmm_distill.pipeline.stages import StageStore, file_sha256, stage_key

STAGES = ["label-train", "label-validation", "label-test", "train", "protocols"]


@dataclass
class PipelineResult:
    output_dir: Path
    ran: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    student: Optional[Path] = None
    report: Optional[Path] = None
    summary: Dict[str, object] = field(default_factory=dict)


def _molecules(names: Sequence[str], split: Optional[str], limit: Optional[int]):
    """(name, smiles) pairs from catalog names and/or a whole split."""
    from openmm_distill.systems import get_molecule, molecules

    entries = [get_molecule(n) for n in names]
    if split:
        entries += [m for m in molecules(split) if m.name not in set(names)]
    if limit:
        entries = entries[:limit]
    return [(m.name, m.smiles) for m in entries]


class Pipeline:
    def __init__(self, config: PipelineConfig, log: Callable[[str], None] = print, force: Sequence[str] = ()):
        unknown = [s for s in force if s not in STAGES + ["all"]]
        if unknown:
            raise ValueError(f"--force stage(s) {unknown} unknown; stages are {STAGES} (or 'all')")
        self.cfg = config
        self.out = Path(config.output_dir)
        self.store = StageStore(self.out)
        self.log = log
        self.force = set(STAGES if "all" in force else force)
        self.result = PipelineResult(self.out)

    # -- helpers ---------------------------------------------------------------------------------
    def _stage(self, name: str, inputs: Dict, run: Callable[[], Dict[str, str]]) -> Dict[str, str]:
        key = stage_key(name, inputs)
        if name not in self.force and self.store.up_to_date(name, key):
            self.log(f"[{name}] up to date, skipped")
            self.result.skipped.append(name)
            return self.store.outputs(name)
        self.log(f"[{name}] running")
        start = time.perf_counter()
        outputs = run()
        seconds = time.perf_counter() - start
        self.store.save(name, key, outputs, seconds)
        self.log(f"[{name}] done in {seconds:.0f} s")
        self.result.ran.append(name)
        return outputs

    def _label(self, role: str, mols, sampling: Dict) -> Optional[str]:
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

        return self._stage(f"label-{role}", inputs, run)["dataset"]

    # -- stages ----------------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        cfg, m = self.cfg, self.cfg.molecules
        train_mols = _molecules(m.train, m.train_split, m.limit)
        val_mols = _molecules(m.validation, m.validation_split, m.limit)
        test_mols = _molecules(m.test, m.test_split, m.limit)
        self.log(f"pipeline {cfg.name!r}: {len(train_mols)} training, {len(val_mols)} validation and "
                 f"{len(test_mols)} test molecules, teacher {cfg.teacher.name}, output {self.out}")
        # Check the training recipe and overrides now, so a bad key fails before hours of labelling.
        self._training_config("unlabelled-yet.h5", None, None)
        eval_sampling = cfg.evaluation_sampling or cfg.sampling
        train_h5 = self._label("train", train_mols, cfg.sampling)
        val_h5 = self._label("validation", val_mols, eval_sampling)
        test_h5 = self._label("test", test_mols, eval_sampling)
        student = self._train(train_h5, val_h5, test_h5)
        self.result.student = Path(student)
        report = self._protocols(student)
        self.result.report = Path(report)
        return self.result

    def _training_config(self, train_h5: str, val_h5: Optional[str], test_h5: Optional[str]):
        from openmm_distill.training import load_config

        recipe = resolve(self.cfg, self.cfg.training.recipe)
        overrides = [f"{k}={v}" for k, v in self.cfg.training.set.items()]
        overrides += [f"data.path={train_h5}", f"run.output_dir={self.out / 'train'}",
                      f"data.validation_path={val_h5 or 'null'}", f"data.test_path={test_h5 or 'null'}"]
        return recipe, load_config(recipe, overrides)

    def _train(self, train_h5: str, val_h5: Optional[str], test_h5: Optional[str]) -> str:
        from openmm_distill.training import train

        run_dir = self.out / "train"
        recipe, tcfg = self._training_config(train_h5, val_h5, test_h5)
        inputs = {"recipe": Path(recipe).read_text(), "set": self.cfg.training.set,
                  "train": file_sha256(train_h5), "validation": val_h5 and file_sha256(val_h5),
                  "test": test_h5 and file_sha256(test_h5)}

        def run():
            resume = (run_dir / "last.pt").is_file() and (run_dir / "stage_key").is_file() and \
                (run_dir / "stage_key").read_text() == stage_key("train", inputs)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "stage_key").write_text(stage_key("train", inputs))
            result = train(tcfg, resume=resume, overwrite=not resume)
            if result.compiled_path is None:
                raise RuntimeError("training finished without a compiled student (run.compile is off?)")
            self.result.summary["validation"] = result.best_metrics
            self.result.summary["test"] = result.test_metrics
            return {"student": str(result.compiled_path)}

        return self._stage("train", inputs, run)["student"]

    def _protocols(self, student: str) -> str:
        from openmm_distill.pipeline.protocol_stage import run_protocols

        p = self.cfg.protocols
        report_dir = self.out / "report"
        inputs = {"student": file_sha256(student), "protocols": vars(p)}

        def run():
            run_protocols(student, p, report_dir, log=self.log)
            return {"report": str(report_dir / "summary.md")}

        return self._stage("protocols", inputs, run)["report"]


def run_pipeline(config: PipelineConfig, log: Callable[[str], None] = print, force: Sequence[str] = ()) -> PipelineResult:
    """Run (or bring up to date) every stage of the pipeline described by ``config``."""
    return Pipeline(config, log=log, force=force).run()
