"""Detect the one import-order mistake this stack punishes.

OpenMM loads its plugins the first time ``openmm`` is imported. The openmm-torch
plugin needs CUDA runtime libraries that ship inside torch, which are only
visible once ``torch`` is imported. Importing ``openmm`` first leaves
TorchForce without kernels for the whole process, and reloading the plugins
later does not register them again. ``openmm_distill`` imports torch first
itself; this module reports the problem clearly when the user's script
imported openmm earlier.
"""
from __future__ import annotations

import sys
from typing import Optional

FIX = ("import openmm_distill (or torch) before openmm: put `import openmm_distill` at the top of the script, "
       "above `import openmm` / `from openmm import app`; or use backend='python', which does not need the plugin")


def torch_plugin_failure() -> Optional[str]:
    """The plugin loading error for openmm-torch's Reference/CPU kernels, or None if they loaded."""
    if "openmm" not in sys.modules:
        return None
    import openmm

    for failure in openmm.Platform.getPluginLoadFailures():
        if "OpenMMTorchReference" in failure:
            return failure
    return None
