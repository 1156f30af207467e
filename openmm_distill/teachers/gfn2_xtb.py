"""GFN2-xTB teacher through tblite's Python API.

tblite works in atomic units: positions in Bohr, energy in Hartree, gradient in
Hartree/Bohr. This adapter converts at the boundary (Angstrom in, eV and
eV/Angstrom out; force = -gradient).

A fresh tblite calculator is built for every structure. Reusing one and only
updating its positions would restart the SCF from the previous density, making
labels depend (at the 1e-8 level) on the order in which structures were
computed, which would break bit-for-bit resumable labelling. Measured here, a
fresh calculator is no slower than an updated one (about 10 ms per 20-atom
structure either way, single thread).

tblite parallelises with OpenMP. The adapter runs it single-threaded by
default (``threads=1``, set with ``omp_set_num_threads`` around every call and
restored afterwards, so it works even after the OpenMP runtime has started): labelling jobs
parallelise over processes, and competing OpenMP threads on a busy machine
are catastrophically slow. Labelling workers also get ``OMP_NUM_THREADS=1``.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import numpy as np

from openmm_distill import units
from openmm_distill.errors import ConfigError, MissingDependencyError, TeacherError
from openmm_distill.teachers.base import Teacher

# Boltzmann constant in Hartree/K (tblite takes the electronic temperature in Hartree).
KELVIN_TO_HARTREE = 3.166808578545117e-6

INSTALL_HINT = "pip install tblite==0.8.0  (or: pip install openmm-distill, which depends on it)"


def _import_tblite():
    try:
        from tblite.interface import Calculator
    except ImportError as exc:  # pragma: no cover - tblite is a core dependency
        raise MissingDependencyError("tblite", INSTALL_HINT, "the 'gfn2-xtb' teacher") from exc
    return Calculator


_LIBGOMP = None


def _libgomp():
    import ctypes

    global _LIBGOMP
    if _LIBGOMP is None:
        try:
            _LIBGOMP = ctypes.CDLL("libgomp.so.1")
        except OSError:
            _LIBGOMP = False
    return _LIBGOMP


@contextlib.contextmanager
def openmp_threads(threads: Optional[int]) -> Iterator[None]:
    """Run a block with ``threads`` OpenMP threads, then restore the previous count.

    OMP_NUM_THREADS only works before the OpenMP runtime starts; this works
    at any time. The runtime (``libgomp.so.1``) is shared with torch, which
    loads its copy first, so the previous value is restored to leave torch's
    thread count alone. ``None`` or a missing libgomp: no change.
    """
    lib = _libgomp() if threads is not None else None
    if not lib:
        yield
        return
    previous = int(lib.omp_get_max_threads())
    lib.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        lib.omp_set_num_threads(previous)


def _tblite_version() -> str:
    try:
        from importlib.metadata import version

        return f"tblite {version('tblite')}"
    except Exception:  # pragma: no cover
        return "tblite (unknown version)"


class GFN2xTBTeacher(Teacher):
    """GFN2-xTB (Bannwarth, Ehlert, Grimme 2019) via tblite.

    Parameters
    ----------
    accuracy : float
        tblite numerical accuracy (smaller is tighter; default 1.0).
    max_iterations : int
        Maximum SCF iterations (default 250). Not converging raises :class:`TeacherError`.
    electronic_temperature : float
        Fermi smearing temperature, Kelvin (default 300 K, tblite's default).
    charge : int
        Default total charge (elementary charges) when :meth:`compute` is not given one.
    uhf : int
        Number of unpaired electrons (default 0).
    threads : int or None
        OpenMP threads for tblite (default 1). Labelling parallelises over
        processes instead; measured on a busy 2-core machine, two OpenMP
        threads made the same GFN2-xTB work 40 times slower than one (the
        threads spin-wait for each other). ``None`` leaves it to
        ``OMP_NUM_THREADS``. Not part of :attr:`settings` (it does not change the labels).
    """

    name = "gfn2-xtb"

    def __init__(
        self,
        accuracy: float = 1.0,
        max_iterations: int = 250,
        electronic_temperature: float = 300.0,
        charge: int = 0,
        uhf: int = 0,
        threads: Optional[int] = 1,
    ) -> None:
        super().__init__()
        self._calculator_class = _import_tblite()
        if not float(accuracy) > 0:
            raise ConfigError(f"accuracy must be > 0, got {accuracy!r}")
        if int(max_iterations) < 1:
            raise ConfigError(f"max_iterations must be >= 1, got {max_iterations!r}")
        if not float(electronic_temperature) > 0:
            raise ConfigError(f"electronic_temperature must be > 0 K, got {electronic_temperature!r}")
        if int(uhf) < 0:
            raise ConfigError(f"uhf must be >= 0, got {uhf!r}")
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self.version = _tblite_version()
        self.settings = {
            "method": "GFN2-xTB",
            "accuracy": float(accuracy),
            "max_iterations": int(max_iterations),
            "electronic_temperature_K": float(electronic_temperature),
            "charge": int(charge),
            "uhf": int(uhf),
            "forces": "analytic gradient (conservative)",
        }

    def _compute(self, numbers: np.ndarray, positions: np.ndarray, box: Optional[np.ndarray], charge: Optional[int]):
        s = self.settings
        kwargs = {}
        if box is not None:
            kwargs["lattice"] = box / units.BOHR_TO_ANGSTROM
            kwargs["periodic"] = np.array([True, True, True])
        calc = self._calculator_class(
            s["method"],
            numbers.astype(np.int32),
            positions / units.BOHR_TO_ANGSTROM,
            charge=float(s["charge"] if charge is None else charge),
            uhf=s["uhf"],
            **kwargs,
        )
        calc.set("verbosity", 0)
        calc.set("accuracy", s["accuracy"])
        calc.set("max-iter", s["max_iterations"])
        calc.set("temperature", s["electronic_temperature_K"] * KELVIN_TO_HARTREE)
        try:
            with openmp_threads(self.threads):
                result = calc.singlepoint()
        except Exception as exc:  # TBLiteRuntimeError, e.g. "SCF not converged in 250 cycles"
            raise TeacherError(f"GFN2-xTB failed: {exc}") from exc
        energy_ev = float(result.get("energy")) * units.HARTREE_TO_EV
        gradient = np.asarray(result.get("gradient"), dtype=np.float64)  # Hartree/Bohr
        forces_ev_per_a = -gradient * (units.HARTREE_TO_EV / units.BOHR_TO_ANGSTROM)
        return energy_ev, forces_ev_per_a
