"""Shared fixtures: small real molecules (RDKit), water boxes (OpenMM Modeller) and compiled students.

Students here have random weights (training is tested elsewhere); their
energies are smooth functions of positions, which is all these tests need.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import openmm_distill  # noqa: F401  (torch before openmm)
from openmm_distill.export import compile_student  # noqa: E402
from openmm_distill.models import build_student, preset_names  # noqa: E402

from openmm import app, unit  # noqa: E402

# One tolerance table keyed by the deployed dtype: (relative energy, absolute force kJ/mol/nm).
TOLERANCE = {"float32": (1e-5, 1e-2), "float64": (1e-10, 1e-6)}


# The platform tests (marker "platform") run on these OpenMM platforms, comma-separated, when it is set
# (device/gpu_check.py sets CUDA on a GPU machine); unset, on every available one of Reference, CPU, CUDA.
TEST_PLATFORM_ENV = "OD_TEST_PLATFORM"


def available_test_platforms():
    import openmm

    chosen = os.environ.get(TEST_PLATFORM_ENV, "")
    if chosen.strip():
        return [p.strip() for p in chosen.split(",") if p.strip()]
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    return [p for p in ["Reference", "CPU", "CUDA"] if p in names]


def platform_by_name(name: str):
    """The OpenMM platform ``name``; a missing one fails the test with OpenMM's plugin load failures
    (a platform named in $OD_TEST_PLATFORM must not be silently left out)."""
    import openmm

    try:
        return openmm.Platform.getPlatformByName(name)
    except Exception:
        names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
        failures = [f for f in openmm.Platform.getPluginLoadFailures() if name in f]
        pytest.fail(f"OpenMM platform {name!r} is not available (available: {names}; "
                    f"plugin load failures: {failures or 'none naming it'})")


def molecule_from_smiles(smiles: str, seed: int = 7):
    """(atomic_numbers, positions_nm, topology) for a molecule with explicit hydrogens."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    pos = mol.GetConformer().GetPositions() * 0.1
    top = app.Topology()
    res = top.addResidue("MOL", top.addChain())
    atoms = [top.addAtom(f"{app.element.Element.getByAtomicNumber(int(a)).symbol}{k}",
                         app.element.Element.getByAtomicNumber(int(a)), res) for k, a in enumerate(z)]
    for b in mol.GetBonds():
        top.addBond(atoms[b.GetBeginAtomIdx()], atoms[b.GetEndAtomIdx()])
    return z, pos, top


def water_box(edge_nm: float):
    """A TIP3P water box (topology, positions, amber14 forcefield) built by OpenMM's Modeller."""
    ff = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, boxSize=openmm_vec(edge_nm))
    return modeller.topology, modeller.positions, ff


def openmm_vec(edge_nm: float):
    import openmm

    return openmm.Vec3(edge_nm, edge_nm, edge_nm) * unit.nanometer


def label_small_dataset(path, molecules, n_conformers: int, random_samples: int) -> str:
    """A small real dataset: GFN2-xTB labels of ETKDG conformers and random displacements."""
    from openmm_distill.data.labelling import label

    label(molecules, str(path),
          sampling=dict(n_conformers=n_conformers, random_samples=random_samples, normal_mode_samples=0,
                        md_temperatures_K=[], random_sigma=0.05, seed=0),
          progress=False)
    return str(path)


@pytest.fixture
def restore_torch_threads():
    """Training runs set run.threads=1 (exact reproducibility); give the process its thread count back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def randomise_readout(model):
    """Students start with a zero readout (E = reference energies); tests need a non-trivial surface."""
    torch.nn.init.normal_(model.readout[2].weight, std=0.5)


def make_student(path, preset="ultra-tiny", dtype="float64", seed=0, elements=None):
    """Compile a random-weight student; scale makes energies O(1) eV per atom so forces are sizeable."""
    torch.manual_seed(seed)
    model = build_student(preset, elements=elements)
    randomise_readout(model)
    model.energy_scale.fill_(2.0)
    compile_student(model, path, dtype=dtype, preset=preset)
    return path


@pytest.fixture(scope="session")
def ethanol():
    return molecule_from_smiles("CCO")


@pytest.fixture(scope="session")
def aspirin():
    return molecule_from_smiles("CC(=O)Oc1ccccc1C(=O)O")


@pytest.fixture(scope="session")
def student64(tmp_path_factory):
    """ultra-tiny student compiled in float64 (for tight numerical checks)."""
    return make_student(tmp_path_factory.mktemp("students") / "ultra_tiny_f64.pt")


@pytest.fixture(scope="session")
def student32(tmp_path_factory):
    return make_student(tmp_path_factory.mktemp("students") / "ultra_tiny_f32.pt", dtype="float32")


@pytest.fixture(scope="session", params=preset_names())
def preset_student(request, tmp_path_factory):
    """One float32 compiled student per preset."""
    return request.param, make_student(tmp_path_factory.mktemp("presets") / f"{request.param}.pt",
                                       preset=request.param, dtype="float32")
