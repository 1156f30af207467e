"""A small error hierarchy: every error the package raises on purpose derives from
:class:`DistillError`, so callers can catch one type. Each also derives from the
built-in type callers would expect (ValueError, KeyError, FileNotFoundError,
ImportError, RuntimeError). The command line prints a DistillError as one line
and exits with code 2; anything else is a bug and keeps its traceback."""
from __future__ import annotations

from typing import Optional


class DistillError(Exception):
    """Base class for errors raised by openmm-distill."""


class UnsupportedElementError(DistillError, ValueError):
    """A structure contains an element the student was not trained on."""


class BoxTooSmallError(DistillError, ValueError):
    """A periodic box is narrower than twice the student's cutoff."""


class InvalidPositionsError(DistillError, ValueError):
    """Positions contain NaN or infinite values, have the wrong shape, or put two atoms on top of each other."""


class IncompatibleFileError(DistillError, ValueError):
    """A checkpoint or compiled file is not ours, or was written by an incompatible version."""


class ConfigError(DistillError, ValueError):
    """A configuration has an unknown key or a bad value."""


class TeacherError(DistillError, RuntimeError):
    """A teacher failed on a structure (SCF not converged, exception, ...)."""


class MissingFileError(DistillError, FileNotFoundError):
    """A file or folder the user named (structure, dataset, config, student) does not exist."""


class UnknownNameError(DistillError, KeyError):
    """A name (molecule, student, teacher, preset) is not in its registry; the message lists close ones."""

    def __str__(self) -> str:
        # KeyError's own str() quotes the message: 'unknown molecule ...'.
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(DistillError, ImportError):
    """An optional package is not installed; the message names the command that installs it.

    ``MissingDependencyError("sevenn", 'pip install "openmm-distill[sevennet]"', "the 'sevennet' teacher")``
    writes the message; with one argument, that argument is the message.
    """

    def __init__(self, package: str, install: Optional[str] = None, needed_for: str = "") -> None:
        if install is None:
            super().__init__(package)
        else:
            what = f" (needed for {needed_for})" if needed_for else ""
            super().__init__(f"{package} is not installed{what}; install it with: {install}", name=package)
        self.install = install


class StructureError(DistillError, ValueError):
    """A structure file or SMILES cannot be read, or gives no usable 3D structure."""
