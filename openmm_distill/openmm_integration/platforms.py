"""Pick the fastest available OpenMM platform and its properties."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from openmm_distill.errors import ConfigError

import openmm

PLATFORM_ORDER = ["CUDA", "OpenCL", "CPU", "Reference"]
PRECISIONS = ["single", "mixed", "double"]
# Platforms whose precision is a property; CPU is fixed (single forces, double
# integration) and Reference is always double.
_PRECISION_PLATFORMS = {"CUDA", "OpenCL"}


def available_platforms() -> List[str]:
    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def choose_platform(name: Optional[str] = None, precision: Optional[str] = None) -> Tuple[openmm.Platform, Dict[str, str]]:
    """Return ``(platform, properties)``.

    Parameters
    ----------
    name : platform name, or None for the first available of CUDA, OpenCL, CPU, Reference
    precision : "single", "mixed" or "double" for CUDA/OpenCL (default "mixed"); ignored
        with a note in the properties-free return for CPU and Reference
    """
    available = available_platforms()
    if name is None:
        name = next(p for p in PLATFORM_ORDER if p in available)
    elif name not in available:
        raise ConfigError(f"OpenMM platform {name!r} is not available here; available: {available}")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {PRECISIONS}")
    properties: Dict[str, str] = {}
    if name in _PRECISION_PLATFORMS:
        properties["Precision"] = precision or "mixed"
    return openmm.Platform.getPlatformByName(name), properties


def describe_platform(context: openmm.Context) -> Dict[str, str]:
    """Platform name and precision actually used by a Context (for reports)."""
    platform = context.getPlatform()
    name = platform.getName()
    info = {"platform": name}
    if name in _PRECISION_PLATFORMS:
        info["precision"] = platform.getPropertyValue(context, "Precision")
    else:
        info["precision"] = "double" if name == "Reference" else "mixed (CPU: single forces, double integration)"
    return info
