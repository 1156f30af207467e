"""openmm-distill: small student force fields distilled from foundation models, run in OpenMM.

``import torch`` comes first on purpose: the ``openmmtorch`` plugin needs the
CUDA runtime libraries (``libnvrtc.so.12``) that ship with torch, and OpenMM scans
its plugins when ``openmm`` is first imported. Importing torch first makes them
visible; the other order leaves TorchForce without kernels. Nothing else in the
package may import openmm before this line has run. When a script imported openmm
first, the default ``backend="auto"`` runs students in ``openmm.PythonForce`` and
warns once, saying why (see :mod:`openmm_distill.import_order`).
"""
import torch  # noqa: F401  (must precede any openmm import, see above)

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
from openmm_distill.version import __version__  # noqa: E402

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
