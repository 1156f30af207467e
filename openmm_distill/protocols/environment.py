"""Where a protocol ran: the platform and precision a Context really uses, and the software versions."""
from __future__ import annotations

import datetime
import os
import platform as _platform
from typing import Any, Dict, Optional

from openmm_distill.export.student import load_student
from openmm_distill.openmm_integration.platforms import describe_platform
from openmm_distill.openmm_integration.system import student_backends
from openmm_distill.protocols.openmm_setup import ModelLike
from openmm_distill.version import __version__

import openmm


def platform_info(simulation_or_context, model: Optional[ModelLike] = None) -> Dict[str, Any]:
    """Platform and precision a Context really uses, with a note on how forces are computed.

    The CPU platform evaluates its own forces in single precision (and
    integrates in double); a student's TorchForce runs in the compiled
    module's dtype whatever the platform.
    """
    context = getattr(simulation_or_context, "context", simulation_or_context)
    info: Dict[str, Any] = dict(describe_platform(context))
    name = info["platform"]
    if name == "CPU":
        info["note"] = ("CPU platform: OpenMM's own forces are computed in single precision, integration in "
                        "double; a TorchForce runs in the student's dtype")
    elif name == "Reference":
        info["note"] = "Reference platform: double precision throughout (slow)"
    else:
        info["note"] = f"{name} platform, precision {info.get('precision')}"
    backends = student_backends(context.getSystem())
    if backends:
        info["backend"] = ", ".join(sorted(set(backends)))
    if model is not None and not isinstance(model, openmm.System):
        info["student_dtype"] = load_student(model).metadata.get("dtype")
    threads = context.getPlatform().getPropertyValue(context, "Threads") if name == "CPU" else None
    if threads:
        info["threads"] = threads
    return info


def platform_sentence(info: Dict[str, Any]) -> str:
    """One Markdown sentence naming the platform, precision, force-precision note and student dtype."""
    if not info:
        return "Platform: not started."
    text = f"Platform: {info.get('platform', '?')}, precision: {info.get('precision', '?')}"
    if info.get("student_dtype"):
        text += f"; student module dtype {info['student_dtype']}"
    if info.get("backend"):
        text += f"; backend {info['backend']}"
    return text + "."


def environment_info() -> Dict[str, Any]:
    """Versions and machine facts recorded in every result file."""
    import torch

    return {"openmm_distill": __version__, "openmm": openmm.__version__, "torch": torch.__version__,
            "python": _platform.python_version(), "machine": _platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda_available": bool(torch.cuda.is_available()),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
