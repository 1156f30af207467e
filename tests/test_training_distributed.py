"""Data-parallel training under a real ``torchrun --nproc_per_node=2`` (CPU, gloo backend).

The dataset is real: water and methanol, randomly displaced conformers
labelled with the GFN2-xTB teacher through the data API (14 structures, as in
tests/test_training.py but smaller). The run goes through the command line
(``python -m torch.distributed.run ... -m openmm_distill.cli train``), the
way users start it. NCCL / several GPUs are not exercised here.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.training.config import load_config
from openmm_distill.training.distributed import ShardedBatchSampler, parameter_checksum
from tests.conftest import label_small_dataset

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "openmm_distill" / "recipes"
EPOCHS = 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """14 real GFN2-xTB-labelled structures of water and methanol."""
    return label_small_dataset(tmp_path_factory.mktemp("ddp-data") / "tiny.h5",
                               [("water", "O"), ("methanol", "CO")], 1, 6)


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def overrides(dataset: str, out: Path):
    # 14 structures -> 9 train / 3 validation / 2 test, all in batches of 2. Training: 5 batches, each
    # rank takes 2 and the ragged fifth is dropped. Validation: 2 batches (2 + 1 structures), one per
    # rank. Test: 1 batch, so rank 1 evaluates nothing and must still take part in the reduction.
    return [f"data.path={dataset}", "data.validation_path=null", "data.test_path=null", "data.split=structure",
            "data.validation_fraction=0.2", "data.test_fraction=0.15", "data.batch_size=2",
            "data.validation_batch_size=2", f"optim.epochs={EPOCHS}", "run.threads=1", "run.compile=true",
            "run.progress=false", "run.tensorboard=false", f"run.output_dir={out}"]


def test_sharded_batch_sampler_splits_the_epoch_order():
    batches = [[2 * k, 2 * k + 1] for k in range(5)]
    train = [list(ShardedBatchSampler(batches, r, 2, drop_ragged=True)) for r in range(2)]
    assert train == [[batches[0], batches[2]], [batches[1], batches[3]]]  # same step count, tail dropped
    assert [len(ShardedBatchSampler(batches, r, 2, drop_ragged=True)) for r in range(2)] == [2, 2]
    evaluation = [list(ShardedBatchSampler(batches, r, 3, drop_ragged=False)) for r in range(3)]
    assert sorted(b for part in evaluation for b in part) == batches  # every batch exactly once
    assert [len(ShardedBatchSampler(batches, r, 3, drop_ragged=False)) for r in range(3)] == [2, 2, 1]


# About 15 s on a busy 2-core machine (two processes importing torch, 2 epochs, a compile): not marked slow.
def test_torchrun_two_processes_train_like_one(dataset, tmp_path):
    from openmm_distill.export import load_compiled
    from openmm_distill.models import load_checkpoint
    from openmm_distill.training import Trainer

    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", OPENMM_DISTILL_TEST_CHECKSUM="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "openmm_distill.cli", "train", str(RECIPES / "ultra-tiny.yaml")]
    for o in overrides(dataset, out):
        cmd += ["--set", o]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "data-parallel: 2 processes (backend gloo), 2 steps per epoch each" in log, log[-3000:]
    assert proc.stdout.count("best epoch") == 1  # only rank 0 reports

    # One run folder, written once: one metrics.csv with every epoch.
    csvs = list(tmp_path.rglob("metrics.csv"))
    assert csvs == [out / "metrics.csv"]
    with open(csvs[0]) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))

    # The compiled student loads; checkpoints hold the unwrapped student (no DDP "module." prefix).
    _, meta = load_compiled(out / "student.pt")
    assert meta["epochs_run"] == EPOCHS and meta["preset"] == "ultra-tiny"
    for name in ["last.pt", "best.pt"]:
        payload = torch.load(out / name, map_location="cpu", weights_only=True)
        keys = list(payload["state_dict"])
        assert keys and not any(k.startswith("module.") for k in keys), keys[:5]

    # Both ranks ended with bitwise the same weights, which are last.pt's raw weights.
    sums = [(out / f"param_checksum.rank{r}.txt").read_text().strip() for r in range(2)]
    last_model, _ = load_checkpoint(out / "last.pt")
    assert sums[0] == sums[1] == parameter_checksum(last_model)

    # Sharded validation / test (ragged over the ranks, sums added) equal one process's numbers
    # for the same weights: best.pt's EMA weights are the ones validated at the best epoch.
    cfg = load_config(RECIPES / "ultra-tiny.yaml", overrides(dataset, tmp_path / "single"))
    single = Trainer(cfg)
    setup = single.prepare()
    best_model, payload = load_checkpoint(out / "best.pt")
    best_epoch = payload["extra"]["epoch"]
    val = single.evaluate_loader(best_model, setup.val_loader)
    row = rows[best_epoch - 1]
    assert val["n_structures"] == 3
    for key in ["force_mae", "force_rmse", "force_r2", "angle_deg", "energy_mae_mev_per_atom", "loss"]:
        assert float(row[f"val_{key}"]) == pytest.approx(val[key], rel=1e-9, abs=1e-12), key
    summary = json.loads((out / "summary.json").read_text())
    from openmm_distill.training import datasets as ds

    test_loader = ds.make_loader(setup.data.test_path, setup.data.split.test, 2, shuffle=False, dtype=torch.float32)
    test = single.evaluate_loader(best_model, test_loader)
    assert summary["test_metrics"]["n_structures"] == 2
    for key in ["force_mae", "force_r2", "angle_deg", "energy_mae_mev_per_atom"]:
        assert summary["test_metrics"][key] == pytest.approx(test[key], rel=1e-9, abs=1e-12), key
