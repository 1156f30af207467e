"""The version has one home (openmm_distill/version.py): the package root and the installed metadata agree."""
from importlib.metadata import version

import openmm_distill
from openmm_distill.version import __version__


def test_one_version_everywhere():
    # pyproject.toml reads the version from openmm_distill/version.py (dynamic = ["version"]).
    assert openmm_distill.__version__ == __version__ == version("openmm-distill")
