"""openmm-distill: small student force fields distilled from foundation models, run in OpenMM.

``import torch`` comes first on purpose: the ``openmmtorch`` plugin needs the
CUDA runtime libraries (``libnvrtc.so.12``) that ship with torch, and OpenMM scans
its plugins when ``openmm`` is first imported. Importing torch first makes them
visible; the other order leaves TorchForce without kernels. Nothing else in the
package may import openmm before this line has run.
"""
import sys as _sys

_OPENMM_FIRST = "openmm" in _sys.modules
import torch  # noqa: E402,F401  (must precede any openmm import, see above)

__version__ = "0.1.0"

from openmm_distill import errors  # noqa: E402,F401

from openmm_distill.api import (  # noqa: E402
    add_student_force,
    available_students,
    choose_platform,
    create_mixed_system,
    create_simulation,
    create_system,
    load_student,
)

if _OPENMM_FIRST:
    from openmm_distill.import_order import FIX as _FIX, torch_plugin_failure as _failure

    if _failure():
        import warnings as _warnings

        _warnings.warn("openmm was imported before torch, so openmm-torch's TorchForce has no kernels in this "
                       "process. " + _FIX, RuntimeWarning, stacklevel=2)

__all__ = [
    "__version__",
    "add_student_force",
    "available_students",
    "choose_platform",
    "create_mixed_system",
    "create_simulation",
    "create_system",
    "load_student",
]
