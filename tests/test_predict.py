"""The one evaluation loop (openmm_distill.export.predict): a compiled student on a list of structures."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import openmm_distill as od
from openmm_distill.errors import UnsupportedElementError
from openmm_distill.export.predict import CompiledPredictor, predict_structures
from openmm_distill.units import ANGSTROM_TO_NM, KJ_PER_MOL_TO_EV, NM_TO_ANGSTROM

import openmm
from openmm import unit


def test_predictions_equal_openmm_in_the_teachers_units(student64, ethanol, aspirin):
    predictor = CompiledPredictor(student64)
    structures = [SimpleNamespace(atomic_numbers=z, positions=pos_nm * NM_TO_ANGSTROM, box=None)
                  for z, pos_nm, _ in (ethanol, aspirin, ethanol)]  # rebinding between different molecules
    result = predict_structures(predictor, structures)
    assert result.kept == [0, 1, 2] and not result.failures
    for (z, pos_nm, top), energy, forces in zip((ethanol, aspirin, ethanol), result.energies, result.forces):
        system = od.create_system(top, student64)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(pos_nm)
        state = context.getState(getEnergy=True, getForces=True)
        reference_ev = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
        reference_f = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        assert energy == pytest.approx(reference_ev, rel=1e-9)
        np.testing.assert_allclose(forces, reference_f * KJ_PER_MOL_TO_EV * ANGSTROM_TO_NM, atol=1e-8)


def test_a_structure_the_student_cannot_evaluate_is_a_failure_or_an_error(student64, ethanol):
    z, pos_nm, _ = ethanol
    iron = np.array(z)
    iron[0] = 26
    structures = [SimpleNamespace(atomic_numbers=z, positions=pos_nm * NM_TO_ANGSTROM, box=None),
                  SimpleNamespace(atomic_numbers=iron, positions=pos_nm * NM_TO_ANGSTROM, box=None)]
    result = predict_structures(CompiledPredictor(student64), structures)
    assert result.kept == [0] and [i for i, _ in result.failures] == [1]
    assert "Fe (Z=26)" in result.failures[0][1]
    with pytest.raises(UnsupportedElementError, match="Fe"):
        predict_structures(CompiledPredictor(student64), structures, keep_going=False)
