"""Student architecture: registry, symmetry, locality, smoothness, neighbour search, checkpoints."""
import math

import numpy as np
import pytest
import torch

from openmm_distill.errors import IncompatibleFileError
from openmm_distill.models import (
    PRESETS,
    build_student,
    count_parameters,
    load_checkpoint,
    neighbor_list,
    preset_names,
    save_checkpoint,
)
from openmm_distill.models.checkpoint import CHECKPOINT_FORMAT_VERSION, read_checkpoint
from openmm_distill.models.neighbors import all_pairs, cell_list
from tests.conftest import randomise_readout


def energy(model, z, pos, box=None):
    species = model.species_of(torch.as_tensor(z))
    pos = torch.as_tensor(pos, dtype=torch.float64)
    ei, sh = neighbor_list(pos, model.cutoff, None if box is None else torch.as_tensor(box))
    return model(species, pos, ei, sh, torch.zeros(len(z), dtype=torch.long), 1)[0]


def energy_forces(model, z, pos, box=None):
    pos = torch.tensor(pos, dtype=torch.float64, requires_grad=True)
    e = energy(model, z, pos, box)
    (g,) = torch.autograd.grad(e, pos)
    return float(e.detach()), -g.numpy()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    m = build_student("ultra-tiny").double()
    randomise_readout(m)
    m.energy_scale.fill_(3.0)
    return m


def random_molecule(n=12, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.choice([1, 6, 7, 8], size=n)
    return z, rng.uniform(0, 4.0, size=(n, 3))


def random_rotation(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("preset", preset_names())
def test_presets_build_and_have_expected_sizes(preset):
    n = count_parameters(build_student(preset))
    # The original project's sizes (~430K / ~21K) within 25 %; `tiny` is ours, widened to 96 channels
    # (the original project's ~77K had too little capacity for the blind-set target, docs/chemistry.md).
    target = {"original": 430_000, "tiny": 134_000, "ultra-tiny": 21_000}[preset]
    assert 0.75 * target < n < 1.1 * target
    assert PRESETS[preset].cutoff == 5.0


def test_unknown_preset_names_choices():
    with pytest.raises(ValueError, match="unknown student preset 'huge'.*original"):
        build_student("huge")


def test_unsupported_element_is_named(model):
    with pytest.raises(ValueError, match=r"\[26\]"):
        model.species_of(torch.tensor([6, 26, 1]))


def test_rotation_translation_invariance_and_force_equivariance(model):
    z, pos = random_molecule()
    e0, f0 = energy_forces(model, z, pos)
    rot = random_rotation(3)
    e1, f1 = energy_forces(model, z, pos @ rot.T + np.array([3.0, -7.0, 11.0]))
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, f0 @ rot.T, atol=1e-9)


def test_permutation_invariance(model):
    z, pos = random_molecule()
    perm = np.random.default_rng(5).permutation(len(z))
    e0, f0 = energy_forces(model, z, pos)
    e1, f1 = energy_forces(model, z[perm], pos[perm])
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, f0[perm], atol=1e-9)


def test_far_apart_fragments_are_additive(model):
    za, pa = random_molecule(8, seed=1)
    zb, pb = random_molecule(9, seed=2)
    ea = energy_forces(model, za, pa)[0]
    eb = energy_forces(model, zb, pb)[0]
    eab = energy_forces(model, np.concatenate([za, zb]), np.concatenate([pa, pb + 50.0]))[0]
    assert eab == pytest.approx(ea + eb, abs=1e-9)


def test_energy_and_force_vanish_smoothly_at_cutoff(model):
    """Two atoms: the interaction and its force go to zero continuously as r -> cutoff."""
    rc = model.cutoff
    far = energy_forces(model, [6, 8], [[0, 0, 0], [rc + 0.5, 0, 0]])
    for eps in [1e-2, 1e-3]:
        e, f = energy_forces(model, [6, 8], [[0, 0, 0], [rc - eps, 0, 0]])
        assert abs(e - far[0]) < 1e-2 * eps ** 0  # continuous
        assert np.abs(f).max() < 50 * eps  # force ~ (rc - r) near the cutoff


def test_periodic_image_invariance(model):
    z, pos = random_molecule(20, seed=4)
    box = np.array([[12.0, 0, 0], [1.5, 11.0, 0], [-2.0, 1.0, 10.5]])  # reduced triclinic
    e0, f0 = energy_forces(model, z, pos, box)
    shifted = pos.copy()
    shifted[3] += box[0] - 2 * box[2]
    shifted[7] -= box[1]
    e1, f1 = energy_forces(model, z, shifted, box)
    assert e1 == pytest.approx(e0, abs=1e-9)
    np.testing.assert_allclose(f1, f0, atol=1e-9)


@pytest.mark.parametrize("periodic,edge", [(False, 20.0), (True, 20.0), (True, 12.0)])
def test_cell_list_finds_the_same_pairs_as_all_pairs(periodic, edge):
    """Triclinic boxes with >= 3 cells per axis, and 2 cells per axis (12 A box, 5 A cutoff)."""
    rng = np.random.default_rng(0)
    box = torch.tensor([[20.0, 0, 0], [3.0, 19.0, 0], [-4.0, 2.5, 18.0]], dtype=torch.float64) * (edge / 20.0) \
        if periodic else None
    frac = torch.tensor(rng.uniform(size=(900, 3)))
    pos = frac @ box if periodic else frac * 25.0
    a_idx, a_sh = all_pairs(pos, 5.0, box)
    c_idx, c_sh = cell_list(pos, 5.0, box)
    a = {(int(i), int(j), *np.round(s, 6)) for (i, j), s in zip(a_idx.T.tolist(), a_sh.numpy())}
    c = {(int(i), int(j), *np.round(s, 6)) for (i, j), s in zip(c_idx.T.tolist(), c_sh.numpy())}
    assert len(a) > 1000 and a == c


class _Search(torch.nn.Module):
    def forward(self, pos: torch.Tensor, box: torch.Tensor):
        return neighbor_list(pos, 5.0, box, None, 16)


@pytest.mark.parametrize("frozen", [False, True])
def test_periodic_shifts_stay_out_of_the_autograd_graph(frozen):
    """openmm-torch runs students through torch.jit.freeze, which drops detach(); shifts must still not depend
    on the positions, or every MD step back-propagates zeros through all candidate pairs of the cell list."""
    module = torch.jit.script(_Search()).eval()
    if frozen:
        module = torch.jit.freeze(module)
    rng = np.random.default_rng(1)
    box = torch.eye(3, dtype=torch.float64) * 16.0
    pos = torch.tensor(rng.uniform(size=(200, 3)) * 16.0, requires_grad=True)
    edge_index, shifts = module(pos, box)
    assert edge_index.shape[1] > 0 and bool((shifts != 0).any())
    assert not shifts.requires_grad


def test_batched_pairs_stay_within_structures():
    pos = torch.zeros(6, 3, dtype=torch.float64)
    pos[:, 0] = torch.arange(6) * 0.5
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    idx, _ = neighbor_list(pos, 5.0, batch=batch)
    assert (batch[idx[0]] == batch[idx[1]]).all() and idx.shape[1] == 12


def test_checkpoint_round_trip_and_format_checks(tmp_path, model):
    path = tmp_path / "s.pt"
    save_checkpoint(path, model, preset="ultra-tiny", extra={"epoch": 3})
    raw = torch.load(path, weights_only=True)  # plain data only: loads without pickle code
    assert not any(k.startswith("model.") for k in raw["state_dict"])
    loaded, payload = load_checkpoint(path)
    z, pos = random_molecule()
    assert energy_forces(loaded, z, pos)[0] == pytest.approx(energy_forces(model, z, pos)[0], abs=1e-9)
    assert payload["extra"]["epoch"] == 3
    raw["format_version"] = CHECKPOINT_FORMAT_VERSION + 1
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(IncompatibleFileError, match="format version 2"):
        read_checkpoint(tmp_path / "future.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(IncompatibleFileError, match="not a readable"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(IncompatibleFileError, match="not an openmm-distill student checkpoint"):
        read_checkpoint(tmp_path / "other.pt")


def test_parameter_count_command_prints_presets(capsys):
    from openmm_distill.cli import main

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in preset_names():
        assert name in out
    assert f"{count_parameters(build_student('original')):,}" in out


def test_rbf_is_finite_at_small_distance(model):
    e, f = energy_forces(model, [1, 1], [[0, 0, 0], [0.3, 0, 0]])
    assert math.isfinite(e) and np.isfinite(f).all()


def reference_painn_energy(model, z, pos):
    """PaiNN written out with one [E, 3F] filter per layer split into (s, vv, vs), the textbook layout.

    Checkpoints store the filter rows in this order; the optimised message block must read them the same way.
    """
    species = model.species_of(torch.as_tensor(z))
    pos = torch.as_tensor(pos, dtype=torch.float64)
    i, j = neighbor_list(pos, model.cutoff, None)[0]
    vec = pos[j] - pos[i]
    r = vec.norm(dim=-1)
    unit = vec / r[:, None]
    w_all = model.filters(model.rbf(r) * model.fcut(r)[:, None])
    s = model.embedding(species)
    v = torch.zeros(len(z), 3, model.hidden, dtype=s.dtype)
    offset = 0
    for k, block in enumerate(model.messages):
        x = block.phi(s)[j] * w_all[:, offset:offset + block.n_out]
        offset += block.n_out
        if block.with_vectors:
            ds_e, dvv, dvs = torch.split(x, block.hidden, dim=-1)
            dv_e = dvs[:, None, :] * unit[:, :, None] + dvv[:, None, :] * v[j]
            v = v + torch.zeros_like(v).index_add_(0, i, dv_e)
        else:
            ds_e = x
        s = s + torch.zeros_like(s).index_add_(0, i, ds_e)
        if k < len(model.updates):
            s, v = model.updates[k](s, v)
    e = model.readout(s).squeeze(-1) * model.energy_scale + model.energy_shift
    return (e + model.atomic_reference_energy[species]).sum()


@pytest.mark.parametrize("preset", ["ultra-tiny", "original"])
def test_message_block_matches_the_textbook_layout(preset):
    torch.manual_seed(3)
    m = build_student(preset).double()
    randomise_readout(m)
    z, pos = random_molecule(10, seed=3)
    expected = float(reference_painn_energy(m, z, pos).detach())
    assert float(energy(m, z, pos).detach()) == pytest.approx(expected, rel=1e-12, abs=1e-10)
