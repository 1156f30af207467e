"""Molecular dynamics shared by the protocols and exploration: the MD loop, the watchdog, watched Langevin runs.

:mod:`.loop` (step in chunks, a callback per state), :mod:`.watchdog`
(broken or fused bonds, detached hydrogens, huge forces) and :mod:`.langevin`
(NVT runs under the watchdog). Below the protocols and active learning; above
the OpenMM integration.
"""
