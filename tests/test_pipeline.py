"""The main job end to end on a tiny config: artefacts, skip-when-up-to-date, config errors."""
from pathlib import Path

import numpy as np
import pytest
import yaml

import openmm_distill as od
import openmm
from openmm import unit

from openmm_distill.errors import ConfigError
from openmm_distill.pipeline import load_pipeline_config, run_pipeline

TINY = {
    "name": "test",
    "molecules": {"train": ["methanol", "ethylamine"], "validation": ["acetone"], "test": ["ethanol"]},
    "sampling": {"n_conformers": 1, "random_samples": 3, "normal_mode_samples": 2, "md_snapshots": 0},
    "evaluation_sampling": {"n_conformers": 1, "random_samples": 2, "normal_mode_samples": 0, "md_snapshots": 0},
    "workers": 1,
    "training": {"recipe": "training/ultra-tiny.yaml",
                 "set": {"optim.epochs": 2, "optim.early_stopping_patience": 0, "data.batch_size": 4,
                         "run.tensorboard": False, "run.threads": 1, "run.progress": False}},
    "protocols": {"systems": ["ethanol"], "nve_ps": 0.05, "nve_equilibration_ps": 0.01, "stability": False,
                  "stability_ps": 0.02, "throughput": False, "throughput_teachers": False},
}


def write_config(tmp_path, values, name="pipe.yaml"):
    path = tmp_path / name
    values = dict(values, output_dir=str(tmp_path / "out"))
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.slow
def test_pipeline_end_to_end_and_skips_when_up_to_date(tmp_path):
    cfg_path = write_config(tmp_path, TINY)
    result = run_pipeline(load_pipeline_config(str(cfg_path)))
    out = tmp_path / "out"
    assert result.ran == ["label-train", "label-validation", "label-test", "train", "protocols"]
    for artefact in ["data/train.h5", "data/validation.h5", "data/test.h5", "train/student.pt", "train/metrics.csv",
                     "train/config.yaml", "report/summary.md", "report/report.json", "stages/train.json"]:
        assert (out / artefact).exists(), artefact
    assert result.student == out / "train" / "student.pt"

    # The compiled student runs in OpenMM.
    from openmm_distill.systems import structure_from_smiles, structure_to_openmm_topology

    s = structure_from_smiles("CCO")
    system = od.create_system(structure_to_openmm_topology(s), str(result.student))
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(s.positions * 0.1)
    assert np.isfinite(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))

    # Nothing changed: every stage is skipped.
    again = run_pipeline(load_pipeline_config(str(cfg_path)))
    assert again.ran == [] and len(again.skipped) == 5

    # A protocol setting changed: only the protocols stage reruns.
    changed = dict(TINY, protocols=dict(TINY["protocols"], nve_ps=0.06))
    third = run_pipeline(load_pipeline_config(str(write_config(tmp_path, changed))))
    assert third.ran == ["protocols"]

    # A deleted output is noticed: training reruns (and the protocols after it, since the student changed or not).
    (out / "train" / "student.pt").unlink()
    fourth = run_pipeline(load_pipeline_config(str(write_config(tmp_path, changed))))
    assert "train" in fourth.ran and "label-train" in fourth.skipped


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'epochs' in the pipeline config; allowed keys: name"):
        load_pipeline_config(str(write_config(tmp_path, dict(TINY, epochs=3))))
    bad = dict(TINY, protocols=dict(TINY["protocols"], nve_length=3))
    with pytest.raises(ConfigError, match=r"unknown key protocols.'nve_length'.*nve_ps"):
        load_pipeline_config(str(write_config(tmp_path, bad)))


def test_bad_values_are_named(tmp_path):
    bad = dict(TINY, molecules=dict(TINY["molecules"], train_split="training"))
    with pytest.raises(ConfigError, match=r"molecules.train_split = 'training' is not one of"):
        load_pipeline_config(str(write_config(tmp_path, bad)))
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        load_pipeline_config(str(write_config(tmp_path, dict(TINY, workers=0))))


def test_bad_trainer_key_fails_before_any_work(tmp_path):
    bad = dict(TINY, training=dict(TINY["training"], set={"optim.epoch": 2}))
    cfg = load_pipeline_config(str(write_config(tmp_path, bad)))
    with pytest.raises(ConfigError, match="epoch"):
        run_pipeline(cfg, force=[])
    assert not (tmp_path / "out" / "data" / "train.h5").exists()


def test_builtin_default_config_is_valid():
    cfg = load_pipeline_config()
    assert cfg.training.recipe.endswith("tiny.yaml") and cfg.molecules.test == ["ethanol"]
    from openmm_distill.systems import get_molecule

    for name in cfg.molecules.train + cfg.molecules.validation + cfg.molecules.test:
        assert get_molecule(name).split in ("train", "validation", "test")


def test_cli_reports_config_errors(tmp_path, capsys):
    from openmm_distill.cli import main

    assert main(["pipeline", str(write_config(tmp_path, dict(TINY, epochs=3)))]) == 1
    assert "unknown key 'epochs'" in capsys.readouterr().err
