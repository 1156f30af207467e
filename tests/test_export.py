"""Compile step: scripted vs eager vs reloaded, metadata, refusal of foreign or incompatible files."""
import json

import numpy as np
import pytest
import torch

from openmm_distill.errors import IncompatibleFileError, UnsupportedElementError
from openmm_distill.export import DeployedStudent, compile_student, load_compiled, load_student
from openmm_distill.export.torchscript import METADATA_FILE
from openmm_distill.models import build_student, save_checkpoint
from tests.conftest import TOLERANCE, randomise_readout


def energy_forces(module, z, pos_nm, box=None):
    module.set_atoms(torch.tensor(z), None)
    pos = torch.tensor(pos_nm, dtype=torch.float64, requires_grad=True)
    e = module(pos, box)
    (g,) = torch.autograd.grad(e, pos)
    return float(e.detach()), -g.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scripted_eager_and_reloaded_agree(tmp_path, aspirin, dtype):
    z, pos, _ = aspirin
    torch.manual_seed(0)
    model = build_student("tiny")
    randomise_readout(model)
    model.energy_scale.fill_(2.0)
    meta = compile_student(model, tmp_path / "s.pt", dtype=dtype, preset="tiny")
    eager = DeployedStudent(model, {"float32": torch.float32, "float64": torch.float64}[dtype])
    scripted = torch.jit.script(DeployedStudent(build_student("tiny"), eager.dtype))
    scripted.load_state_dict(eager.state_dict())
    reloaded, meta2 = load_compiled(tmp_path / "s.pt")
    e0, f0 = energy_forces(eager, z, pos)
    rtol, ftol = TOLERANCE[dtype]
    for other in (scripted, reloaded):
        e1, f1 = energy_forces(other, z, pos)
        assert e1 == pytest.approx(e0, rel=rtol)
        np.testing.assert_allclose(f1, f0, atol=ftol * max(1.0, np.abs(f0).max() / 100))
    assert meta2 == json.loads(json.dumps(meta))


def test_metadata_is_embedded(student32):
    _, meta = load_compiled(student32)
    assert meta["units"] == {"positions": "nm", "box_vectors": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"}
    assert meta["elements"] == [1, 6, 7, 8, 9, 15, 16, 17]
    assert meta["element_symbols"][:4] == ["H", "C", "N", "O"]
    assert meta["cutoff_nm"] == pytest.approx(0.5)
    assert meta["preset"] == "ultra-tiny"
    assert meta["torch_version"] == torch.__version__
    for key in ("package_version", "created", "n_parameters", "dtype", "scripted_vs_eager"):
        assert key in meta


def test_unbound_module_refuses_to_compute(student32):
    module, _ = load_compiled(student32)
    with pytest.raises(Exception, match="set_atoms"):
        module(torch.zeros(3, 3), None)


def test_unsupported_element_named_with_supported_list(student32):
    with pytest.raises(UnsupportedElementError, match=r"Fe \(Z=26\).*H, C, N, O, F, P, S, Cl"):
        load_student(student32).bound_module([6, 26, 1])


def test_foreign_files_are_refused(tmp_path, student32):
    # A training checkpoint passed where a compiled file is expected.
    save_checkpoint(tmp_path / "ckpt.pt", build_student("ultra-tiny"))
    with pytest.raises(IncompatibleFileError, match="not a TorchScript file.*compile"):
        load_compiled(tmp_path / "ckpt.pt")
    # A TorchScript file that is not a student.
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "linear.pt"))
    with pytest.raises(IncompatibleFileError, match="not a compiled openmm-distill student"):
        load_compiled(tmp_path / "linear.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(IncompatibleFileError):
        load_compiled(tmp_path / "garbage.pt")


def test_incompatible_format_version_is_refused(tmp_path, student32):
    module, meta = load_compiled(student32)
    meta["format_version"] = 99
    meta["package_version"] = "9.0.0"
    torch.jit.save(module, str(tmp_path / "future.pt"), _extra_files={METADATA_FILE: json.dumps(meta)})
    with pytest.raises(IncompatibleFileError, match="format version 99.*9.0.0.*recompile"):
        load_compiled(tmp_path / "future.pt")


def test_compile_cli_and_info_cli(tmp_path, capsys):
    from openmm_distill.cli import main

    save_checkpoint(tmp_path / "c.pt", build_student("ultra-tiny"), preset="ultra-tiny", provenance={"note": "test"})
    assert main(["compile", str(tmp_path / "c.pt"), "-o", str(tmp_path / "c_compiled.pt")]) == 0
    assert main(["info", str(tmp_path / "c_compiled.pt")]) == 0
    out = capsys.readouterr().out
    assert "ultra-tiny" in out and "cutoff" in out
    _, meta = load_compiled(tmp_path / "c_compiled.pt")
    assert meta["note"] == "test" and meta["source_checkpoint"].endswith("c.pt")
    # Errors come back as a message and exit code 2, not a traceback.
    assert main(["info", str(tmp_path / "c.pt")]) == 2
    assert "not a TorchScript file" in capsys.readouterr().err


def test_info_without_a_student_lists_the_shipped_ones_with_their_teacher_and_accuracy(capsys):
    from openmm_distill.cli import main
    from openmm_distill.export.student import SHIPPED_DIR, available_students

    assert main(["info", "--json"]) == 0
    rows = {r["student"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == available_students() and "original-sevennet0" in rows
    recorded = json.loads((SHIPPED_DIR / "test_metrics.json").read_text())  # written by training/ship_students.py
    for name, row in rows.items():
        meta = load_compiled(SHIPPED_DIR / f"{name}.pt")[1]
        assert row["parameters"] == meta["n_parameters"] and row["teacher"].startswith(meta["teacher"]["name"])
        assert row["force_r2"] == {"test": recorded[name]["metrics"]["force_r2"],
                                   "blind": recorded[name]["blind"]["metrics"]["force_r2"]}
    assert rows["tiny-sevennet0"]["teacher"] == "sevennet (7net-0)"
    assert main(["info"]) == 0
    table = capsys.readouterr().out
    assert f"{recorded['original']['blind']['metrics']['force_r2']:.4f}" in table and "ultra-tiny" in table


def test_compile_cli_rebuilds_a_compiled_student_keeping_weights_and_metadata(tmp_path, capsys, aspirin):
    """Students compiled by older code get the current deployed code, nothing else changes."""
    from openmm_distill.cli import main

    model = build_student("ultra-tiny").double()
    randomise_readout(model)  # float64 weights that float32 cannot hold: a rebuild must not round them
    old = tmp_path / "old.pt"
    compile_student(model, old, dtype="float64", preset="ultra-tiny",
                    metadata={"test_metrics": {"force_r2": 0.5}, "note": "kept"})
    z, pos, _ = aspirin
    e0, f0 = energy_forces(load_compiled(old)[0], z, pos)

    assert main(["compile", str(old), "-o", str(tmp_path / "new.pt")]) == 0
    module, meta = load_compiled(tmp_path / "new.pt")
    e1, f1 = energy_forces(module, z, pos)
    assert e1 == pytest.approx(e0, abs=1e-9) and np.allclose(f1, f0, atol=1e-8)
    assert meta["note"] == "kept" and meta["test_metrics"] == {"force_r2": 0.5} and meta["dtype"] == "float64"
    assert meta["rebuilt_from"]["path"] == str(old)

    assert main(["compile", str(old), "-o", str(old)]) == 0  # in place: checked before it replaces the file
    assert load_compiled(old)[1]["rebuilt_from"]["path"] == str(old)

    assert main(["compile", str(old), "-o", str(tmp_path / "x.pt"), "--dtype", "float32"]) == 2
    assert "compiled float64 student" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_text("not a model")
    assert main(["compile", str(tmp_path / "junk.pt"), "-o", str(tmp_path / "x.pt")]) == 2
    assert "nor is it a compiled student" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_casting_to_float32_keeps_the_float64_energy_buffers_exact():
    from openmm_distill.models.casting import cast_model

    model = build_student("ultra-tiny", elements=[1, 6, 8])
    reference = torch.tensor([-13.6056980659, -1029.8602131, -2040.7891235], dtype=torch.float64)
    model.atomic_reference_energy.copy_(reference)
    model.energy_shift.fill_(-0.123456789012345)
    cast = cast_model(model, torch.float32)
    assert cast.embedding.weight.dtype == torch.float32
    # Not rounded through float32 on the way (float32 keeps ~7 digits of -2040.789...).
    assert torch.equal(cast.atomic_reference_energy, reference)
    assert float(cast.energy_shift) == -0.123456789012345


def test_pair_vectors_are_formed_before_the_cast_to_float32(tmp_path, aspirin):
    """A float32 student far from the origin (OpenMM does not wrap coordinates): pair vectors are formed in the
    caller's float64 and only then rounded, so moving the molecule 1,000 nm away changes nothing beyond float32
    round-off. Rounding the coordinates first would move atoms by ~1e-3 Angstrom there."""
    from tests.conftest import make_student

    z, pos, _ = aspirin
    module, _ = load_compiled(make_student(tmp_path / "s.pt", dtype="float32"))
    e0, f0 = energy_forces(module, z, pos)
    e1, f1 = energy_forces(module, z, pos + 1000.0)
    rtol, ftol = TOLERANCE["float32"]
    assert e1 == pytest.approx(e0, rel=rtol / 10)
    np.testing.assert_allclose(f1, f0, atol=ftol * max(1.0, np.abs(f0).max() / 100))
