"""The main job: inputs in every format, fine-tuning from a shipped student, the active-learning loop
and its budget, resumability, and the errors a user meets before any labelling starts."""
import json

import numpy as np
import pytest
import yaml

import openmm_distill as od
from openmm_distill.errors import ConfigError, StructureError, UnsupportedElementError
from openmm_distill.pipeline import load_pipeline_config, run_pipeline
from openmm_distill.pipeline.inputs import collect_molecules

import openmm
from openmm import unit

TINY = {
    "name": "test",
    "molecules": {"train": ["methanol", "ethylamine"], "validation": ["acetone"], "test": ["ethanol"]},
    "sampling": {"n_conformers": 1, "random_samples": 3, "normal_mode_samples": 2, "md_snapshots": 0},
    "evaluation_sampling": {"n_conformers": 1, "random_samples": 2, "normal_mode_samples": 0, "md_snapshots": 0},
    "workers": 1,
    "training": {"recipe": "ultra-tiny",
                 "set": {"optim.epochs": 2, "optim.early_stopping_patience": 0, "data.batch_size": 4,
                         "run.tensorboard": False, "run.threads": 1, "run.progress": False}},
    "protocols": {"nve_ps": 0.05, "nve_equilibration_ps": 0.01, "stability": False,
                  "stability_ps": 0.02, "throughput": False, "throughput_teachers": False},
    "loop": {"max_rounds": 0, "explore": {"length_ps": 0.1, "frame_interval_fs": 50.0}, "set": {"optim.epochs": 1}},
}


def write_config(tmp_path, values, name="pipe.yaml"):
    path = tmp_path / name
    values = dict(values, output_dir=str(tmp_path / "out"))
    path.write_text(yaml.safe_dump(values))
    return path


def energy_kj_per_mol(student, smiles="CCO"):
    """The student's energy of one RDKit structure through a real OpenMM Context (CPU platform)."""
    from openmm_distill.systems import structure_from_smiles, structure_to_openmm_topology

    s = structure_from_smiles(smiles)
    system = od.create_system(structure_to_openmm_topology(s), str(student))
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(s.positions * 0.1)
    return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


@pytest.mark.slow
def test_fine_tunes_shipped_student_then_loop_rounds_budget_and_resume(tmp_path):
    # Round 0 only: label, convert the shipped student, fine-tune it, validate.
    cfg_path = write_config(tmp_path, TINY)
    result = run_pipeline(load_pipeline_config(str(cfg_path)))
    out = tmp_path / "out"
    assert result.ran == ["label-train", "label-validation", "label-test", "start", "train", "protocols"]
    for artefact in ["data/train.h5", "data/validation.h5", "data/test.h5", "start/start.pt",
                     "train/student.pt", "train/metrics.csv", "train/config.yaml", "report/summary.md",
                     "report/report.json", "stages/train.json", "student.pt", "summary.md", "summary.json"]:
        assert (out / artefact).exists(), artefact
    assert result.student == out / "student.pt" and "max_rounds = 0" in result.stop_reason

    # The starting file is a copy of the shipped student; training started from it: the trainer was
    # told so, and the student moved, but kept its elements.
    from openmm_distill.export.student import resolve_student_path
    from openmm_distill.pipeline.stages import file_sha256

    assert file_sha256(out / "start" / "start.pt") == file_sha256(resolve_student_path("ultra-tiny"))
    shipped = energy_kj_per_mol("ultra-tiny")
    trained = yaml.safe_load((out / "train" / "config.yaml").read_text())
    assert trained["model"]["init_from"] == str(out / "start" / "start.pt")
    fine_tuned = energy_kj_per_mol(result.student)
    assert np.isfinite(fine_tuned) and fine_tuned != pytest.approx(shipped, abs=1e-3)
    assert od.load_student(str(result.student)).elements == od.load_student("ultra-tiny").elements

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["verdicts"]) == {"methanol", "ethylamine", "acetone", "ethanol"}
    assert summary["starting_student"] == "shipped 'ultra-tiny'"
    assert [c["stage"] for c in summary["costs"]] == result.ran
    assert all(c["seconds"] >= 0 for c in summary["costs"])

    # These protocols are far too short for "production": a budget smaller than one round stops the loop
    # before any exploration, and says so; every earlier stage is up to date.
    budget = dict(TINY, loop=dict(TINY["loop"], max_rounds=2, budget_minutes=0.001))
    again = run_pipeline(load_pipeline_config(str(write_config(tmp_path, budget))))
    assert again.ran == [] and len(again.skipped) == 6
    assert "loop.budget_minutes = 0.001 would be exceeded" in again.stop_reason
    assert "loop.budget_minutes = 0.001 would be exceeded" in (out / "summary.md").read_text()

    # One round of active learning: explore the failing training molecules, label, merge, fine-tune, validate.
    one_round = dict(TINY, loop=dict(TINY["loop"], max_rounds=1))
    third = run_pipeline(load_pipeline_config(str(write_config(tmp_path, one_round))))
    assert third.ran == ["explore-1", "merge-1", "train-1", "protocols-1"]
    assert len(third.rounds) == 2 and set(third.rounds[1]["explored"]) <= {"methanol", "ethylamine"}
    from openmm_distill.data.store import LabelledDataset

    with LabelledDataset(str(out / "data" / "explore-1.h5")) as explored:
        assert len(explored) > 0 and set(explored.molecule_names) <= {"methanol", "ethylamine"}
    trained = yaml.safe_load((out / "train-1" / "config.yaml").read_text())
    assert trained["model"]["init_from"] == str(out / "train" / "best.pt") and trained["optim"]["epochs"] == 1
    assert "| round 0 | round 1 |" in (out / "summary.md").read_text()

    # A changed protocol setting reruns only the protocols (and what depends on their verdicts).
    changed = dict(one_round, protocols=dict(TINY["protocols"], nve_ps=0.06))
    fourth = run_pipeline(load_pipeline_config(str(write_config(tmp_path, changed))))
    assert fourth.ran[0] == "protocols" and "train" in fourth.skipped and "label-train" in fourth.skipped


def test_few_molecules_get_held_out_geometries_from_scratch(tmp_path):
    values = dict(TINY, molecules=["methanol"], training=dict(TINY["training"], init_from="scratch"),
                  protocols=dict(TINY["protocols"], systems=["methanol"]))
    result = run_pipeline(load_pipeline_config(str(write_config(tmp_path, values))))
    out = tmp_path / "out"
    from openmm_distill.data.store import LabelledDataset

    positions = {}
    for role in ("train", "validation", "test"):
        with LabelledDataset(str(out / "data" / f"{role}.h5")) as data:
            assert set(data.molecule_names) == {"methanol"}, role
            positions[role] = np.concatenate([s.positions for s in data])
    # Held-out geometries: none of the validation or test geometries is a training one.
    for role in ("validation", "test"):
        d = np.linalg.norm(positions[role][:, None, :] - positions["train"][None, :, :], axis=-1)
        assert d.min() > 0.0, role
    assert "start" not in result.ran
    summary = (out / "summary.md").read_text()
    assert "held-out conformers and hot MD geometries of these same molecules" in summary
    assert "trained from scratch" in summary


def test_unknown_element_is_refused_before_labelling(tmp_path, capsys):
    values = dict(TINY, molecules=["methanol", "CCBr"])
    with pytest.raises(UnsupportedElementError, match=r"molecule 'CCBr' .*the starting student shipped 'ultra-tiny' "
                                                      r"does not support element\(s\) Br .*"
                                                      r"training.init_from: scratch"):
        run_pipeline(load_pipeline_config(str(write_config(tmp_path, values))))
    assert not (tmp_path / "out" / "data").exists()
    from openmm_distill.cli import main

    assert main(["pipeline", str(write_config(tmp_path, values))]) != 0
    err = capsys.readouterr().err
    assert "element(s) Br" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _write_structures(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    def mol3d(smiles, name):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        mol.SetProp("_Name", name)
        return mol

    writer = Chem.SDWriter(str(tmp_path / "two.sdf"))
    for smiles, name in (("CCO", "my_ethanol"), ("CC(=O)O", "my_acid")):
        writer.write(mol3d(smiles, name))
    writer.close()
    Chem.MolToMolFile(mol3d("CC(C)=O", "my_acetone"), str(tmp_path / "acetone.mol"))
    Chem.MolToPDBFile(mol3d("CN", "methylamine"), str(tmp_path / "methylamine.pdb"))
    Chem.MolToPDBFile(Chem.RemoveHs(mol3d("CN", "x")), str(tmp_path / "no_hydrogens.pdb"))
    (tmp_path / "mols.csv").write_text("name,smiles\npropanol,CCCO\nbutanol,CCCCO\n")
    (tmp_path / "mols.smi").write_text("# SMILES name\nc1ccccc1 my_benzene\nCC#N\n")


def test_each_input_format(tmp_path):
    from rdkit import Chem

    from openmm_distill.pipeline.config import MoleculesSection

    _write_structures(tmp_path)
    entries = ["glycine", "CCOC", str(tmp_path / "mols.csv"), str(tmp_path / "mols.smi"),
               str(tmp_path / "two.sdf"), str(tmp_path / "acetone.mol"), str(tmp_path / "methylamine.pdb")]
    sets = collect_molecules(MoleculesSection(train=entries))
    canonical = {name: Chem.CanonSmiles(smiles) for name, smiles in sets.train}
    assert canonical == {"glycine": Chem.CanonSmiles("NCC(=O)O"), "CCOC": "CCOC", "propanol": "CCCO",
                         "butanol": "CCCCO", "my_benzene": "c1ccccc1", "mols_2": "CC#N", "my_ethanol": "CCO",
                         "my_acid": "CC(=O)O", "my_acetone": "CC(C)=O", "methylamine": "CN"}
    assert sets.held_out and sets.validation == [] and sets.test == []

    # `molecules: <file>` and `molecules: [...]` are the user's training molecules.
    cfg = load_pipeline_config(str(write_config(tmp_path, dict(TINY, molecules=str(tmp_path / "mols.csv")))))
    assert [n for n, _ in collect_molecules(cfg.molecules).train] == ["propanol", "butanol"]
    with pytest.raises(StructureError, match="no_hydrogens.pdb.*explicit hydrogens"):
        collect_molecules(MoleculesSection(train=[str(tmp_path / "no_hydrogens.pdb")]))
    with pytest.raises(ConfigError, match=r"\['butanol', 'propanol'\] appear more than once"):
        collect_molecules(MoleculesSection(train=[str(tmp_path / "mols.csv"), str(tmp_path / "mols.csv")]))


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'epochs' in the pipeline config; allowed keys: name"):
        load_pipeline_config(str(write_config(tmp_path, dict(TINY, epochs=3))))
    bad = dict(TINY, protocols=dict(TINY["protocols"], nve_length=3))
    with pytest.raises(ConfigError, match=r"unknown key 'nve_length' in section 'protocols'.*nve_ps"):
        load_pipeline_config(str(write_config(tmp_path, bad)))
    bad = dict(TINY, loop=dict(TINY["loop"], rounds=3))
    with pytest.raises(ConfigError, match=r"unknown key 'rounds' in section 'loop'.*max_rounds"):
        load_pipeline_config(str(write_config(tmp_path, bad)))


def test_bad_values_are_named(tmp_path):
    bad = dict(TINY, molecules=dict(TINY["molecules"], train_split="training"))
    with pytest.raises(ConfigError, match=r"molecules.train_split = 'training' is not one of"):
        load_pipeline_config(str(write_config(tmp_path, bad)))
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        load_pipeline_config(str(write_config(tmp_path, dict(TINY, workers=0))))
    with pytest.raises(ConfigError, match=r"training.init_from = 'shiped': use shipped or scratch"):
        load_pipeline_config(str(write_config(tmp_path, dict(TINY, training=dict(TINY["training"],
                                                                                   init_from="shiped")))))
    with pytest.raises(ConfigError, match="loop.budget_minutes must be a positive number or null"):
        load_pipeline_config(str(write_config(tmp_path, dict(TINY, loop={"budget_minutes": 0}))))


def test_starting_student_must_match_the_recipe(tmp_path):
    values = dict(TINY, training=dict(TINY["training"], init_from=od.load_student("tiny").path.as_posix()))
    with pytest.raises(ConfigError, match=r"is a 'tiny' student but the recipe's model.preset is 'ultra-tiny'"):
        run_pipeline(load_pipeline_config(str(write_config(tmp_path, values))))
    assert not (tmp_path / "out" / "data").exists()


def test_the_pipeline_starts_from_the_shipped_student_of_its_teacher():
    from openmm_distill.pipeline.start import shipped_name

    if "tiny-sevennet0" not in od.available_students():
        pytest.skip("no shipped SevenNet-0 student in this checkout")
    assert shipped_name("tiny") == shipped_name("tiny", {"name": "gfn2-xtb", "options": {}}) == "tiny"
    assert shipped_name("tiny", {"name": "sevennet", "options": {}}) == "tiny-sevennet0"
    assert shipped_name("tiny", {"name": "SevenNet", "options": {"model": "7net-0", "device": "cpu"}}) == "tiny-sevennet0"
    # Another SevenNet model, or a preset with no SevenNet student: the GFN2-xTB student (energy zero refitted).
    assert shipped_name("tiny", {"name": "sevennet", "options": {"model": "7net-l3i5"}}) == "tiny"
    assert shipped_name("ultra-tiny", {"name": "sevennet", "options": {}}) == "ultra-tiny"


def test_bad_trainer_key_fails_before_any_work(tmp_path):
    bad = dict(TINY, training=dict(TINY["training"], set={"optim.epoch": 2}))
    cfg = load_pipeline_config(str(write_config(tmp_path, bad)))
    with pytest.raises(ConfigError, match="epoch"):
        run_pipeline(cfg, force=[])
    assert not (tmp_path / "out" / "data" / "train.h5").exists()


def test_builtin_default_config_is_valid():
    cfg = load_pipeline_config()
    assert cfg.training.recipe == "tiny" and cfg.training.init_from == "shipped"
    sets = collect_molecules(cfg.molecules)
    # The demo holds no molecule out and runs the protocols on all of its molecules, at the quick lengths.
    assert sets.held_out and len(sets.train) >= 3 and cfg.protocols.systems == []
    assert cfg.protocols.nve_ps >= 5.0 and cfg.protocols.stability and cfg.protocols.stability_ps >= 2.0
    assert cfg.loop.budget_minutes <= 15


def test_cli_reports_config_errors(tmp_path, capsys):
    from openmm_distill.cli import main

    assert main(["pipeline", str(write_config(tmp_path, dict(TINY, epochs=3)))]) != 0
    assert "unknown key 'epochs'" in capsys.readouterr().err
