"""The one table of unit conversions.

Inside the package, teachers, datasets and training use the teacher's units
(eV and Angstrom). OpenMM uses kJ/mol and nm. Conversion happens only at the
boundaries: in the teacher adapters and in the deployed (exported) module.
"""
from __future__ import annotations

# CODATA 2018: 1 eV = 96.48533212... kJ/mol (same value as ase.units).
EV_TO_KJ_PER_MOL = 96.48533212331002
KJ_PER_MOL_TO_EV = 1.0 / EV_TO_KJ_PER_MOL
ANGSTROM_TO_NM = 0.1
NM_TO_ANGSTROM = 10.0
# Forces: eV/A -> kJ/mol/nm
EV_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM = EV_TO_KJ_PER_MOL / ANGSTROM_TO_NM
# RDKit's MMFF reports kcal/mol; 1 kcal = 4.184 kJ (thermochemical calorie).
KCAL_PER_MOL_TO_EV = 4.184 * KJ_PER_MOL_TO_EV
HARTREE_TO_EV = 27.211386245988
BOHR_TO_ANGSTROM = 0.529177210903
MEV_PER_EV = 1000.0
KJ_PER_MOL_TO_MEV = MEV_PER_EV / EV_TO_KJ_PER_MOL
# Boltzmann constant, kJ/mol/K (OpenMM's value: MOLAR_GAS_CONSTANT_R).
BOLTZMANN_KJ_PER_MOL_K = 0.00831446261815324
FEMTOSECOND_TO_PICOSECOND = 1e-3
PICOSECOND_TO_FEMTOSECOND = 1000.0
FEMTOSECOND_TO_NANOSECOND = 1e-6
# Wall-clock time (timings, throughput).
MS_PER_S = 1000.0
SECONDS_PER_DAY = 86400.0

# Units recorded in datasets and metadata.
ENERGY_UNIT = "eV"
LENGTH_UNIT = "Angstrom"
FORCE_UNIT = "eV/Angstrom"
