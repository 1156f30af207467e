"""Training: config validation, losses, metrics, reference energies, EMA, schedules,
Hessian rows, end-to-end training on real GFN2-xTB labels, exact resume, compile and evaluate.

The dataset is real: three small molecules (water, methanol, ethanol), randomly
displaced conformers labelled once per session with the GFN2-xTB teacher
through the data API (about 35 structures, a few seconds).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.errors import ConfigError
from openmm_distill.metrics import (
    MetricAccumulator,
    energy_mae_per_atom,
    force_mae,
    force_r2,
    force_rmse,
    mean_angular_error_deg,
)
from openmm_distill.training import config as cfgmod
from openmm_distill.training.config import load_config
from openmm_distill.training.ema import ExponentialMovingAverage
from openmm_distill.training.losses import angular_loss, distillation_loss, energy_loss, force_loss
from openmm_distill.training.reference_energies import element_counts, fit_energy_model, fit_reference_energies
from openmm_distill.training.schedules import LRSchedule
from tests.conftest import label_small_dataset

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "openmm_distill" / "recipes"
PRESET_RECIPES = ["original", "tiny", "ultra-tiny"]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """~35 real GFN2-xTB-labelled structures of water, methanol and ethanol."""
    return label_small_dataset(tmp_path_factory.mktemp("training-data") / "small.h5",
                               [("water", "O"), ("methanol", "CO"), ("ethanol", "CCO")], 2, 10)


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def smoke_overrides(dataset: str, out: Path, *extra: str):
    return [f"data.path={dataset}", f"run.output_dir={out}", "run.progress=false", "run.threads=1", *extra]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """One short end-to-end run of the smoke recipe (compiled at the end)."""
    from openmm_distill.training import Trainer, finish_run

    out = tmp_path_factory.mktemp("run") / "smoke"
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(dataset, out, "optim.epochs=12"))
    # Compiling best.pt and writing summary.json is the caller's step after the loop.
    result = finish_run(Trainer(cfg).fit())
    return cfg, result


# ----------------------------------------------------------------------------- config
def _write_yaml(tmp_path, text: str) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_key_section_and_allowed(tmp_path):
    p = _write_yaml(tmp_path, "optim:\n  lrr: 0.001\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "'lrr'" in msg and "'optim'" in msg and "allowed keys" in msg and "lr, weight_decay" in msg
    assert "did you mean 'lr'" in msg


def test_unknown_section_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'optimizer' in the training config .*allowed keys: model, data"):
        load_config(_write_yaml(tmp_path, "optimizer:\n  lr: 1\n"))
    with pytest.raises(ConfigError, match=r"optim.scheduler = 'cosin' is not allowed; choose one of: cosine, "
                                          r"plateau, constant"):
        load_config(None, ["optim.scheduler=cosin"])
    with pytest.raises(ConfigError, match="model.preset = 'huge'.*original, tiny, ultra-tiny"):
        load_config(None, ["model.preset=huge"])
    with pytest.raises(ConfigError, match="data.batch_size = 'many' must be an integer"):
        load_config(None, ["data.batch_size=many"])
    with pytest.raises(ConfigError, match=r"optim.lr = -1.0 is not allowed; it must be > 0"):
        load_config(None, ["optim.lr=-1"])
    with pytest.raises(ConfigError, match="model.elements\\[1\\] = 'Xx' is not an element"):
        load_config(None, ["model.elements=[H, Xx]"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["optim.lr"])


def test_overrides_are_parsed_as_yaml_and_round_trip(tmp_path):
    cfg = load_config(None, ["optim.lr=1e-3", "model.elements=[H, 6, O]", "data.max_structures=null",
                             "run.progress=false", "optim.betas=[0.9, 0.99]"])
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.model.elements == ["H", 6, "O"] and cfg.data.max_structures is None
    assert cfg.run.progress is False and cfg.optim.betas == [0.9, 0.99]
    cfgmod.save_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == cfg


ALL_RECIPES = sorted(p.stem for p in RECIPES.glob("*.yaml"))


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_shipped_recipes_are_valid(name):
    cfg = load_config(RECIPES / f"{name}.yaml")
    if name != "smoke":
        assert cfg.model.preset == name.split("_")[0]
    assert cfg.data.path
    start = cfg.model.init_from
    if start and "/" in start:  # a later round starts from the output of another recipe
        outputs = {Path(load_config(RECIPES / f"{n}.yaml").run.output_dir) for n in ALL_RECIPES if n != name}
        assert Path(start).parent in outputs, f"{name}: init_from {start} is no recipe's output"
    elif start:  # or from a shipped student of its preset (``tiny``, ``tiny-sevennet0``)
        from openmm_distill.export.student import resolve_student_path
        from openmm_distill.export.torchscript import read_metadata

        assert read_metadata(resolve_student_path(start))["preset"] == cfg.model.preset
        assert cfg.model.elements is None


@pytest.mark.parametrize("name", PRESET_RECIPES)
def test_each_preset_recipe_trains_one_epoch_and_compiles(name, dataset, tmp_path):
    from openmm_distill.cli import main
    from openmm_distill.export import load_compiled

    out = tmp_path / name
    code = main(["train", str(RECIPES / f"{name}.yaml"), "--quiet",
                 *[a for o in smoke_overrides(dataset, out, "data.validation_path=null", "data.test_path=null",
                                              "data.split=structure", "optim.epochs=1") for a in ("--set", o)]])
    assert code == 0
    _, meta = load_compiled(out / "student.pt")
    assert meta["preset"] == name and meta["epochs_run"] == 1


def test_cli_train_help_and_config_error(capsys, tmp_path):
    from openmm_distill.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--set" in out and "--resume" in out and "SECTION.KEY=VALUE" in out
    code = main(["train", str(RECIPES / "smoke.yaml"), "--set", "loss.energy_wieght=2"])
    assert code == 2  # a usage error (the CLI's error contract)
    assert "'energy_wieght'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- losses and metrics
def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of vector v about a unit axis."""
    return (v * math.cos(angle) + np.cross(axis, v) * math.sin(angle)
            + axis * np.dot(axis, v) * (1 - math.cos(angle)))


def test_angular_error_of_rotated_vectors_is_the_rotation_angle():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(50, 3))
    angle = math.radians(17.0)
    pred = []
    for v in target:
        axis = np.cross(v, rng.normal(size=3))  # perpendicular to v, so v turns by exactly `angle`
        pred.append(_rotate(v, axis / np.linalg.norm(axis), angle))
    pred = torch.tensor(np.array(pred))
    assert mean_angular_error_deg(pred, torch.tensor(target), min_force=0.0) == pytest.approx(17.0, abs=1e-9)
    # The loss is 1 - cos of the same angle.
    assert float(angular_loss(pred, torch.tensor(target), 0.0)) == pytest.approx(1 - math.cos(angle), abs=1e-6)


def test_metrics_on_constructed_data():
    rng = np.random.default_rng(2)
    f = torch.tensor(rng.normal(size=(40, 3)))
    assert force_r2(f, f) == 1.0 and force_mae(f, f) == 0.0 and force_rmse(f, f) == 0.0
    # Predicting the mean gives R^2 = 0; a constant offset d gives MAE = RMSE = |d|.
    assert force_r2(torch.full_like(f, float(f.mean())), f) == pytest.approx(0.0, abs=1e-12)
    assert force_mae(f + 0.3, f) == pytest.approx(0.3) and force_rmse(f - 0.3, f) == pytest.approx(0.3)
    e_ref = torch.tensor([-100.0, -50.0], dtype=torch.float64)
    n = torch.tensor([10, 5])
    assert energy_mae_per_atom(e_ref + torch.tensor([0.1, -0.1], dtype=torch.float64), e_ref, n) == \
        pytest.approx((0.01 + 0.02) / 2)
    # Atoms with tiny teacher forces are left out of the angular error.
    target = torch.tensor([[1.0, 0, 0], [1e-4, 0, 0]])
    pred = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    assert mean_angular_error_deg(pred, target, min_force=0.05) == 0.0
    assert mean_angular_error_deg(pred, target, min_force=0.0) == pytest.approx(45.0)


def test_accumulator_over_batches_equals_whole_set():
    rng = np.random.default_rng(3)
    pf, tf = torch.tensor(rng.normal(size=(30, 3))), torch.tensor(rng.normal(size=(30, 3)))
    pe, te = torch.tensor(rng.normal(size=6)), torch.tensor(rng.normal(size=6))
    n = torch.tensor([5] * 6)
    acc = MetricAccumulator(min_force=0.05)
    for s in range(0, 6, 2):
        acc.update(pe[s:s + 2], te[s:s + 2], n[s:s + 2], pf[5 * s:5 * s + 10], tf[5 * s:5 * s + 10])
    m = acc.compute()
    assert m["force_r2"] == pytest.approx(force_r2(pf, tf), abs=1e-12)
    assert m["force_mae"] == pytest.approx(force_mae(pf, tf), abs=1e-12)
    assert m["force_rmse"] == pytest.approx(force_rmse(pf, tf), abs=1e-12)
    assert m["angle_deg"] == pytest.approx(mean_angular_error_deg(pf, tf, 0.05), abs=1e-9)
    assert m["energy_mae_mev_per_atom"] == pytest.approx(1000 * energy_mae_per_atom(pe, te, n), abs=1e-9)


def test_losses_are_normalised():
    rng = np.random.default_rng(4)
    target = torch.tensor(rng.normal(size=(20, 3)))
    rms = float(torch.sqrt((target ** 2).mean()))
    # Zero forces -> force loss exactly 1 when the scale is the force RMS.
    assert float(force_loss(torch.zeros_like(target), target, rms)) == pytest.approx(1.0)
    assert float(angular_loss(target, target, 0.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(angular_loss(-target, target, 0.0)) == pytest.approx(2.0, abs=1e-6)
    e = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert float(energy_loss(e + torch.tensor([0.4, 0.2], dtype=torch.float64), e, torch.tensor([2, 1]), 0.2)) \
        == pytest.approx(1.0)
    terms = distillation_loss(e, e, torch.tensor([2, 1]), target, target, rms, energy_weight=1, force_weight=10,
                              angular_weight=1, angular_min_force=0.0)
    assert float(terms.total) == pytest.approx(0.0, abs=1e-6)
    assert set(terms.detached()) == {"loss", "energy_loss", "force_loss", "angular_loss"}


# ----------------------------------------------------------------------------- reference energies
def test_reference_energy_fit_recovers_known_values():
    rng = np.random.default_rng(5)
    elements = [1, 6, 7, 8]
    known = np.array([-13.6, -1029.0, -1485.0, -2040.0])  # eV, arbitrary but realistic magnitudes
    n_atoms = rng.integers(3, 20, size=200)
    z = np.concatenate([rng.choice(elements, size=n) for n in n_atoms])
    counts = element_counts(z, n_atoms, elements)
    energies = counts @ known + rng.normal(scale=1e-3, size=len(n_atoms))
    ref = fit_reference_energies(counts, energies)
    np.testing.assert_allclose(ref, known, atol=1e-3)
    forces = rng.normal(scale=2.0, size=(len(z), 3))
    fit = fit_energy_model(z, n_atoms, energies, forces, elements + [9])
    np.testing.assert_allclose(fit.reference[:4], known, atol=1e-3)
    assert fit.reference[4] == 0.0  # fluorine never occurs
    assert fit.scale == pytest.approx(np.sqrt(np.mean(forces ** 2)))
    assert abs(fit.shift) < 1e-3 and fit.residual_std < 1e-3


# ----------------------------------------------------------------------------- EMA and schedule
def test_ema_average_and_state_round_trip():
    model = torch.nn.Linear(2, 1)
    ema = ExponentialMovingAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # first update: decay min(0.5, 1/10) = 0.1
    expected = 0.1 * start + 0.9 * (start + 1.0)
    torch.testing.assert_close(ema.shadow["weight"], expected)
    with ema.average_parameters(model):
        torch.testing.assert_close(model.weight.detach(), expected)
    torch.testing.assert_close(model.weight.detach(), start + 1.0)  # restored
    other = ExponentialMovingAverage(torch.nn.Linear(2, 1), decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and torch.equal(other.shadow["weight"], ema.shadow["weight"])


def test_schedules():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    s = LRSchedule(opt, 1.0, "cosine", total_steps=100, warmup_steps=10, min_ratio=0.01)
    assert s.lr == pytest.approx(0.1)  # warm-up step 0
    assert s.lr_at(9) == pytest.approx(1.0 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 9 / 100))))
    assert s.lr_at(100) == pytest.approx(0.01)
    plateau = LRSchedule(opt, 1.0, "plateau", plateau_factor=0.5, plateau_patience=2)
    for metric in [1.0, 1.0, 1.0]:
        plateau.epoch_end(metric)
    assert plateau.lr == pytest.approx(0.5)
    state = plateau.state_dict()
    again = LRSchedule(opt, 1.0, "plateau", plateau_factor=0.5, plateau_patience=2)
    again.load_state_dict(state)
    assert again.lr == pytest.approx(0.5)


# ----------------------------------------------------------------------------- splits
def test_splits_and_their_errors():
    from openmm_distill.training.datasets import split_indices

    names = ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4
    s = split_indices(names, "molecule", validation_fraction=0.25, test_fraction=0.25, seed=0)
    assert len(s.validation_molecules) == 1 and len(s.test_molecules) == 1 and len(s.train_molecules) == 2
    assert not set(s.train_molecules) & (set(s.validation_molecules) | set(s.test_molecules))
    assert sorted(np.concatenate([s.train, s.validation, s.test]).tolist()) == list(range(16))
    with pytest.raises(ConfigError, match="needs more molecules"):
        split_indices(["a", "b"], "molecule", validation_fraction=0.3, test_fraction=0.3)
    with pytest.raises(ConfigError, match="not_a_catalog_molecule.*data.split = 'molecule' or 'structure'"):
        split_indices(["not_a_catalog_molecule"], "catalog")
    from openmm_distill.systems.catalog import molecules

    one = {part: molecules(part)[0].name for part in ("train", "validation", "test")}
    catalog = split_indices([one["test"], one["train"], one["validation"]], "catalog")
    assert catalog.test_molecules == [one["test"]] and catalog.train_molecules == [one["train"]]
    assert catalog.validation_molecules == [one["validation"]] and catalog.test.tolist() == [0]


# ----------------------------------------------------------------------------- Hessian rows
def test_student_hessian_row_matches_finite_differences():
    from openmm_distill.models import build_student, neighbor_list
    from openmm_distill.training.hessian import student_hessian_rows

    torch.manual_seed(0)
    model = build_student("ultra-tiny", elements=[1, 8]).double()
    torch.nn.init.normal_(model.readout[2].weight, std=0.5)  # the default zero readout has a trivial Hessian
    model.energy_scale.fill_(2.0)
    z = torch.tensor([8, 1, 1, 8, 1, 1])
    x0 = torch.tensor([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0],
                       [3, 0, 0], [3.96, 0, 0], [2.76, 0.93, 0.1]], dtype=torch.float64)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    n_atoms = torch.tensor([3, 3])
    species = model.species_of(z)

    def grad_of(x, create_graph=False):
        x = x.clone().requires_grad_(True)
        ei, sh = neighbor_list(x, model.cutoff, None, batch)
        e = model(species, x, ei, sh, batch, 2)
        (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
        return g, x

    g, x = grad_of(x0, create_graph=True)
    structures, rows = torch.tensor([0, 1]), torch.tensor([4, 7])  # atom 1 y of molecule 0; atom 2 y of molecule 1
    h = student_hessian_rows(g, x, n_atoms, structures, rows)
    h_step = 1e-5
    for s, k in zip(structures.tolist(), rows.tolist()):
        a = 3 * s + k // 3
        xp, xm = x0.clone(), x0.clone()
        xp[a, k % 3] += h_step
        xm[a, k % 3] -= h_step
        fd = (grad_of(xp)[0] - grad_of(xm)[0]) / (2 * h_step)
        torch.testing.assert_close(h[3 * s:3 * s + 3].detach(), fd[3 * s:3 * s + 3], atol=1e-6, rtol=1e-5)


def test_teacher_hessian_rows_are_symmetric():
    from openmm_distill.teachers import get_teacher
    from openmm_distill.training.hessian import teacher_hessian_row

    teacher = get_teacher("gfn2-xtb")
    z = np.array([8, 1, 1])
    x = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    h0 = teacher_hessian_row(teacher, z, x, 0)  # d/dx_O
    h3 = teacher_hessian_row(teacher, z, x, 3)  # d/dx_H1
    assert h0[1, 0] == pytest.approx(h3[0, 0], rel=1e-3, abs=1e-3)  # H[0,3] == H[3,0]
    assert h0[0, 0] > 1.0  # a stiff O-H stretch direction, eV/Angstrom^2


# ----------------------------------------------------------------------------- end to end
def test_training_lowers_the_loss_and_writes_every_artifact(trained, dataset):
    from openmm_distill.export import load_compiled
    from openmm_distill.training.datasets import dataset_sha256
    from openmm_distill.training.history import read_metrics_csv

    cfg, result = trained
    out = result.output_dir
    for name in ["config.yaml", "last.pt", "best.pt", "metrics.csv", "loss_curves.png", "student.pt",
                 "summary.json"]:
        assert (out / name).is_file(), name
    rows = read_metrics_csv(out / "metrics.csv")
    assert len(rows) == result.epochs_run == 12
    assert rows[-1]["train_loss"] < 0.7 * rows[0]["train_loss"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert result.best_metrics["force_mae"] < rows[0]["val_force_mae"]
    for key in ["train_energy_mae_mev_per_atom", "val_force_r2", "val_angle_deg", "val_force_rmse", "lr"]:
        assert key in rows[0]
    # The resolved config beside the checkpoints reloads to the same config.
    assert load_config(out / "config.yaml") == cfgmod.resolve_paths(cfg)
    _, meta = load_compiled(out / "student.pt")
    assert meta["training_data_hash"] == "sha256:" + dataset_sha256(dataset)
    assert meta["teacher"]["name"] == "gfn2-xtb"
    assert meta["preset"] == cfg.model.preset
    assert meta["training_config"]["optim"]["epochs"] == 12
    assert set(meta["validation_metrics"]) >= {"force_mae", "force_r2", "angle_deg", "energy_mae_mev_per_atom"}
    assert meta["data_split"]["method"] == "structure"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == result.best_epoch


def test_compiled_student_equals_checkpoint(trained, dataset):
    from openmm_distill.data.store import open_dataset
    from openmm_distill.export import load_compiled
    from openmm_distill.export.predict import energy_and_forces
    from openmm_distill.models import load_checkpoint, neighbor_list

    _, result = trained
    model, payload = load_checkpoint(result.best_checkpoint)
    assert payload["extra"]["weights"] == "ema"
    module, meta = load_compiled(result.compiled_path)
    with open_dataset(dataset) as ds:
        s = ds[len(ds) - 1]
    x = torch.tensor(s.positions, dtype=torch.float32, requires_grad=True)
    ei, sh = neighbor_list(x, model.cutoff)
    e = model(model.species_of(torch.tensor(s.atomic_numbers)), x, ei, sh, torch.zeros(len(x), dtype=torch.long), 1)
    (g,) = torch.autograd.grad(e.sum(), x)
    module.set_atoms(torch.as_tensor(np.asarray(s.atomic_numbers, dtype=np.int64)), None)
    e_c, f_c = energy_and_forces(module, s.positions)
    assert e_c == pytest.approx(float(e.detach()), rel=1e-6)
    np.testing.assert_allclose(f_c, -g.double().numpy(), atol=2e-5)  # eV/Angstrom, float32 arithmetic


def test_resume_equals_uninterrupted(dataset, tmp_path):
    from openmm_distill.models import load_checkpoint
    from openmm_distill.training import Trainer

    def cfg(name):
        # One thread: multi-threaded CPU BLAS may sum in a different order run to run.
        return load_config(RECIPES / "smoke.yaml", smoke_overrides(dataset, tmp_path / name, "optim.epochs=3",
                                                                   "run.compile=false"))

    full = Trainer(cfg("full")).fit()
    part = Trainer(cfg("split")).fit(stop_after=1)
    assert not part.finished and part.epochs_run == 1
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(cfg("split")).fit()
    resumed = Trainer(cfg("split")).fit(resume=True)
    assert resumed.epochs_run == 3
    for name in ["last.pt", "best.pt"]:
        a, pa = load_checkpoint(tmp_path / "full" / name)
        b, pb = load_checkpoint(tmp_path / "split" / name)
        for key, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[key]), (name, key)
    _, pa = load_checkpoint(tmp_path / "full" / "last.pt")
    _, pb = load_checkpoint(tmp_path / "split" / "last.pt")
    sa, sb = pa["extra"]["trainer_state"], pb["extra"]["trainer_state"]
    for key in ["exp_avg", "exp_avg_sq"]:
        for i, st in sa["optimizer"]["state"].items():
            assert torch.equal(st[key], sb["optimizer"]["state"][i][key])
    timing = {"time_s", "train_time_s"}
    for ra, rb in zip(full.history, resumed.history):
        assert {k: v for k, v in ra.items() if k not in timing} == {k: v for k, v in rb.items() if k not in timing}


def test_evaluate_cli_on_compiled_student(trained, dataset, tmp_path, capsys):
    from openmm_distill.cli import main

    _, result = trained
    report_path = tmp_path / "report.json"
    code = main(["evaluate", "--student", str(result.compiled_path), "--data", dataset, "--split", "test",
                 "--json", str(report_path)])
    assert code == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "force R^2" in text and "energy MAE (meV/atom)" in text and "FAIL" in text
    assert "evaluate" in captured.err  # a progress bar by default, on stderr
    report = json.loads(report_path.read_text())
    assert report["preset"] == "ultra-tiny" and report["split_source"].startswith("student metadata")
    assert report["n_structures"] == result.test_metrics["n_structures"]
    # Compiled-file metrics equal the trainer's eager test metrics (same weights, float32).
    for key in ["force_mae", "force_r2", "angle_deg", "energy_mae_mev_per_atom"]:
        assert report["metrics"][key] == pytest.approx(result.test_metrics[key], rel=1e-4, abs=1e-4)
    assert report["targets"]["force_r2"]["target"] == 0.95 and report["passed"] is False
    assert main(["evaluate", "--student", str(result.compiled_path), "--data", dataset, "--fail-on-miss",
                 "--quiet"]) == 3
    assert "evaluate" not in capsys.readouterr().err


def test_evaluate_by_kind_of_geometry_and_a_spread_subset(trained, dataset, tmp_path, capsys):
    from collections import Counter

    from openmm_distill.cli import main
    from openmm_distill.training import evaluate_compiled
    from openmm_distill.training.datasets import open_labelled
    from openmm_distill.training.evaluate import geometry_kind

    _, result = trained
    with open_labelled(dataset) as labelled:
        kinds = Counter(labelled[i].provenance["method"] for i in range(len(labelled.energy)))
    assert set(kinds) == {"conformer", "random"}
    report_path = tmp_path / "kinds.json"
    assert main(["evaluate", "--student", str(result.compiled_path), "--data", dataset, "--by-kind", "--quiet",
                 "--json", str(report_path)]) == 0
    text = capsys.readouterr().out
    assert "kind of geometry" in text and "conformer" in text and "random" in text
    per_kind = json.loads(report_path.read_text())["per_kind"]
    assert {k: int(m["n_structures"]) for k, m in per_kind.items()} == dict(kinds)
    assert list(per_kind) == [k for k, _ in kinds.most_common()]  # most structures first
    assert geometry_kind({}) == "unrecorded" and geometry_kind(None) == "unrecorded"
    # A quick check spans the file (the first 10 structures are all water) and is the same each time.
    quick = [evaluate_compiled(str(result.compiled_path), dataset, max_structures=10) for _ in range(2)]
    assert quick[0].n_structures == 10 and len(quick[0].molecules) > 1
    assert quick[0].metrics == quick[1].metrics
    assert main(["evaluate", "--student", str(result.compiled_path), "--data", dataset, "--max-structures", "0"]) == 2
    assert "--max-structures must be >= 1, got 0" in capsys.readouterr().err


def test_hessian_distillation_trains(dataset, tmp_path):
    from openmm_distill.training import Trainer

    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "hess", "optim.epochs=1", "run.compile=false", "data.max_structures=8",
        "loss.hessian_weight=1.0", "loss.hessian_structures_per_batch=1"))
    result = Trainer(cfg).fit()
    row = result.history[0]
    assert math.isfinite(row["train_hessian_loss"]) and row["train_hessian_loss"] > 0


def test_evaluate_split_selection_rules():
    from openmm_distill.errors import DistillError
    from openmm_distill.systems.catalog import molecules
    from openmm_distill.training.evaluate import select_structures

    # ethanol is a protocol molecule, in the test split on purpose (systems/README.md).
    names = ["ethanol", "ethanol", molecules("train")[0].name, "not_in_catalog"]
    idx, source = select_structures(names, "test", {})  # no recorded split: the catalog's
    assert idx.tolist() == [0, 1] and source == "molecule catalog"
    recorded = {"data_split": {"method": "molecule", "test_molecules": ["not_in_catalog"]}}
    assert select_structures(names, "test", recorded)[0].tolist() == [3]
    structure = {"data_split": {"method": "structure", "validation_indices": [1], "test_indices": [2]},
                 "training_data_hash": "sha256:abc"}
    assert select_structures(names, "train", structure, "abc")[0].tolist() == [0, 3]
    with pytest.raises(DistillError, match="hash mismatch"):
        select_structures(names, "test", structure, "other")
    with pytest.raises(DistillError, match="no structure of the dataset belongs to the validation split"):
        select_structures(names, "validation", {})


def test_evaluate_accepts_a_shipped_student_name(dataset):
    from openmm_distill.export import available_students
    from openmm_distill.training import evaluate_compiled

    if "ultra-tiny" not in available_students():
        pytest.skip("no shipped ultra-tiny student in this checkout")
    report = evaluate_compiled("ultra-tiny", dataset)
    assert report.preset == "ultra-tiny" and report.n_structures > 0
    assert 0.0 < report.metrics["force_mae"] < 1.0


def test_fine_tuning_starts_from_the_checkpoint_and_keeps_its_energy_model(trained, dataset, tmp_path):
    from openmm_distill.models import load_checkpoint
    from openmm_distill.training import Trainer

    _, result = trained
    source, _ = load_checkpoint(result.best_checkpoint)
    # A learning rate of ~0: the fine-tuned student must still be the source student. Training from
    # scratch (what an ignored init_from would do) gives random weights and a refitted energy model.
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "tuned", "optim.epochs=1", "optim.lr=1.0e-12", "optim.warmup_epochs=0",
        "run.compile=false", f"model.init_from={result.best_checkpoint}"))
    tuned = Trainer(cfg).fit()
    model, payload = load_checkpoint(tuned.best_checkpoint)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
    for name in ("atomic_reference_energy", "energy_scale", "energy_shift"):
        # Equal to rounding: the EMA averages the buffers too (x d + x (1 - d) need not be x exactly).
        torch.testing.assert_close(getattr(model, name), getattr(source, name), rtol=1e-12, atol=0, msg=name)
        assert getattr(model, name).dtype == torch.float64
    assert payload["extra"]["config"]["model"]["init_from"] == str(result.best_checkpoint)
    assert tuned.best_metrics["force_mae"] == pytest.approx(result.best_metrics["force_mae"], rel=1e-4)


def test_fine_tuning_on_another_teachers_labels_refits_the_energy_zero_and_keeps_weights_and_scale(
        trained, dataset, tmp_path):
    """A GFN2-xTB student fine-tuned on EMT labels: the teachers' energy zeros differ by eV per atom."""
    from openmm_distill.data.labelling import relabel
    from openmm_distill.models import load_checkpoint
    from openmm_distill.training import Trainer
    from openmm_distill.training import datasets as ds

    _, result = trained
    source, _ = load_checkpoint(result.best_checkpoint)
    emt = tmp_path / "emt.h5"
    relabel(dataset, str(emt), teacher="ase", teacher_options={"calculator": "ase.calculators.emt:EMT"},
            progress=False)
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        str(emt), tmp_path / "tuned", "optim.epochs=1", "optim.lr=1.0e-12", "optim.warmup_epochs=0",
        "run.compile=false", f"model.init_from={result.best_checkpoint}"))
    trainer = Trainer(cfg)
    tuned = trainer.fit()
    model, _ = load_checkpoint(tuned.best_checkpoint)
    for key, value in source.state_dict().items():
        if key not in ("atomic_reference_energy", "energy_shift"):
            torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
    train = ds.read_subset(str(emt), trainer.setup.data.split.train)
    expected = fit_energy_model(train["atomic_numbers"], train["n_atoms"], train["energy"], train["forces"],
                                list(source.elements))
    np.testing.assert_allclose(model.atomic_reference_energy.numpy(), expected.reference, rtol=1e-9)
    assert float(model.energy_shift) == pytest.approx(expected.shift, rel=1e-9, abs=1e-12)
    shift = np.abs(model.atomic_reference_energy.numpy() - source.atomic_reference_energy.numpy())
    assert shift.max() > 1.0  # eV: kept GFN2 references would have put every energy off by this much


def test_fine_tuning_starts_from_a_shipped_student_by_name(dataset, tmp_path):
    from openmm_distill.export import available_students
    from openmm_distill.export.eager import eager_model
    from openmm_distill.export.torchscript import load_compiled
    from openmm_distill.models import load_checkpoint
    from openmm_distill.training import Trainer

    if "ultra-tiny" not in available_students():
        pytest.skip("no shipped ultra-tiny student in this checkout")
    from openmm_distill.export.student import resolve_student_path

    shipped = eager_model(*load_compiled(resolve_student_path("ultra-tiny")))
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "tuned", "optim.epochs=1", "optim.lr=1.0e-12", "optim.warmup_epochs=0",
        "run.compile=false", "model.preset=ultra-tiny", "model.init_from=ultra-tiny"))
    tuned = Trainer(cfg).fit()
    model, _ = load_checkpoint(tuned.best_checkpoint)
    for key, value in shipped.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key].to(value.dtype), value, rtol=1e-5, atol=1e-6, msg=key)


def test_widening_a_student_keeps_its_energies_and_then_trains_the_new_channels(trained, dataset, tmp_path):
    """model.hidden above the starting student's: the trained weights in place, new channels beside them."""
    from openmm_distill.models import count_parameters, load_checkpoint
    from openmm_distill.models.growth import widen
    from openmm_distill.models.neighbors import neighbor_list
    from openmm_distill.training import Trainer

    _, result = trained
    source, _ = load_checkpoint(result.best_checkpoint)
    wide = widen(source, 48)
    assert (wide.hidden, source.hidden) == (48, 32) and count_parameters(wide) > 2 * count_parameters(source)
    torch.manual_seed(0)
    positions = (torch.rand(12, 3) * 4.0).requires_grad_(True)
    numbers = torch.tensor([8, 1, 1, 6, 1, 1, 1, 8, 1, 6, 6, 1])
    edges, shifts = neighbor_list(positions, source.cutoff)
    results = []
    for model in (source, wide):
        energy = model(model.species_of(numbers), positions, edges, shifts, torch.zeros(12, dtype=torch.long), 1)
        results.append((energy.detach(), torch.autograd.grad(energy.sum(), positions)[0]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-12, atol=1e-4)  # eV, float32 sums
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-5)
    # New channels carry signal (random weights into them), and every weight from them into an old one is 0.
    assert float(wide.embedding.weight.detach()[:, 32:].abs().sum()) > 0.0
    assert float(wide.messages[0].phi[2].weight.detach()[:32, 32:].abs().sum()) == 0.0
    assert float(wide.readout[2].weight.detach()[:, 16:].abs().sum()) == 0.0

    # Through the trainer: at a learning rate of ~0 the wider student scores as the source; then it learns.
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "still", "optim.epochs=1", "optim.lr=1.0e-12", "optim.warmup_epochs=0",
        "run.compile=false", "model.hidden=48", f"model.init_from={result.best_checkpoint}"))
    still = Trainer(cfg).fit()
    assert still.best_metrics["force_mae"] == pytest.approx(result.best_metrics["force_mae"], rel=1e-4)
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "grown", "optim.epochs=2", "optim.lr=1.0e-3", "optim.warmup_epochs=0",
        "run.compile=false", "model.hidden=48", f"model.init_from={result.best_checkpoint}"))
    grown = Trainer(cfg).fit()
    model, payload = load_checkpoint(grown.best_checkpoint)
    assert model.hidden == 48 and payload["hyperparameters"]["hidden"] == 48
    assert float(model.readout[2].weight.detach()[:, 16:].abs().sum()) > 0.0  # the zeros moved: the new channels count


def test_fine_tuning_refuses_architecture_overrides_and_new_elements(trained, dataset, tmp_path):
    from openmm_distill.training import Trainer

    _, result = trained
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "a", "model.n_interactions=3", f"model.init_from={result.best_checkpoint}"))
    with pytest.raises(ConfigError, match="model.n_interactions"):
        Trainer(cfg).fit()
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "d", "model.hidden=16", f"model.init_from={result.best_checkpoint}"))
    with pytest.raises(ConfigError, match=r"model.hidden = 16: .* at least the starting student's 32 channels"):
        Trainer(cfg).fit()
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        dataset, tmp_path / "c", "model.preset=original", f"model.init_from={result.best_checkpoint}"))
    with pytest.raises(ConfigError, match="model.preset"):
        Trainer(cfg).fit()
    nitrogen = label_small_dataset(tmp_path / "nh3.h5", [("ammonia", "N"), ("water", "O")], 1, 9)
    cfg = load_config(RECIPES / "smoke.yaml", smoke_overrides(
        nitrogen, tmp_path / "b", f"model.init_from={result.best_checkpoint}"))
    with pytest.raises(ConfigError, match=r"atomic numbers \[7\]"):
        Trainer(cfg).fit()
