"""A small error hierarchy: every error the package raises on purpose derives from
:class:`DistillError`, so callers can catch one type."""
from __future__ import annotations


class DistillError(Exception):
    """Base class for errors raised by openmm-distill."""


class UnsupportedElementError(DistillError, ValueError):
    """A structure contains an element the student was not trained on."""


class BoxTooSmallError(DistillError, ValueError):
    """A periodic box is narrower than twice the student's cutoff."""


class InvalidPositionsError(DistillError, ValueError):
    """Positions contain NaN or infinite values, or have the wrong shape."""


class IncompatibleFileError(DistillError, ValueError):
    """A checkpoint or compiled file is not ours, or was written by an incompatible version."""


class ConfigError(DistillError, ValueError):
    """A configuration has an unknown key or a bad value."""


class TeacherError(DistillError, RuntimeError):
    """A teacher failed on a structure (SCF not converged, exception, ...)."""
