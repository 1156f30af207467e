"""What the GPU machine offers: versions, the GPU, OpenMM's platforms, and whether openmm-torch loads.

Everything here runs before this process imports ``openmm``: OpenMM loads its plugins on that first
import, and its CUDA plugin needs CUDA libraries that only torch's packages carry on that machine.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Sonames libOpenMMCUDA.so needs (readelf -d of openmm-cuda-13 8.6.1). Its RUNPATH points at
# ../../../nvidia/cu13/lib beside its own install, where pip --target puts nothing; torch's
# nvidia-* packages hold them in another site-packages folder.
OPENMM_CUDA_LIBRARIES = ("libcudart.so.13", "libnvrtc.so.13", "libcufft.so.12")
PROBE_TIMEOUT_S = 240


def use_working_tree() -> None:
    """Import openmm_distill from this checkout, ahead of any installed copy (the wheel in the
    device's --target folder may be older than the tree it travelled with)."""
    if str(REPO) in sys.path:
        sys.path.remove(str(REPO))
    sys.path.insert(1, str(REPO))


def loaded_libraries() -> List[str]:
    """File names of the shared libraries mapped into this process (Linux only; empty elsewhere)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    return sorted({Path(line.split()[-1]).name for line in maps if ".so" in line})


def nvidia_library_dirs() -> List[Path]:
    """Every ``lib`` folder of the installed ``nvidia`` namespace packages (torch's CUDA libraries)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted({p.parent for root in spec.submodule_search_locations for p in Path(root).glob("**/lib/*.so*")})


def preload_cuda_libraries(names=OPENMM_CUDA_LIBRARIES) -> Dict[str, str]:
    """Load the CUDA libraries OpenMM's CUDA plugin needs, globally, unless torch already did.

    Returns ``{soname: how}``: "already loaded", the path loaded, or "not found". A library a process
    has loaded satisfies a later plugin's dependency by soname, whatever that plugin's RUNPATH says.
    """
    import torch  # noqa: F401  (its own CUDA libraries first)

    loaded = loaded_libraries()
    dirs = nvidia_library_dirs()
    found: Dict[str, str] = {}
    for name in names:
        if any(lib.startswith(name) for lib in loaded):
            found[name] = "already loaded"
            continue
        path = next((d / name for d in dirs if (d / name).exists()), None)
        if path is None:
            found[name] = "not found"
            continue
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        found[name] = str(path)
    return found


def gpu_facts() -> Dict[str, Any]:
    """torch's view of the GPU: versions, name, memory (``cuda_available`` False on a CPU machine)."""
    import torch

    facts: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                             "torch_cuda": torch.version.cuda, "cuda_available": bool(torch.cuda.is_available()),
                             "cpu_count": os.cpu_count()}
    if facts["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu_name=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                     gpu_capability=f"{props.major}.{props.minor}", gpu_multiprocessors=props.multi_processor_count)
    return facts


def openmm_facts() -> Dict[str, Any]:
    """OpenMM's version, its platforms (name, speed) and the plugins that failed to load, and why."""
    import openmm

    platforms = [openmm.Platform.getPlatform(i) for i in range(openmm.Platform.getNumPlatforms())]
    return {"openmm": openmm.__version__,
            "platforms": [{"name": p.getName(), "speed": p.getSpeed()} for p in platforms],
            "plugin_load_failures": list(openmm.Platform.getPluginLoadFailures())}


def distribution_version(name: str) -> str:
    """The installed version of a distribution, or why there is none (a fact to report, not a reason to stop)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def package_facts() -> Dict[str, Any]:
    """Which copy of openmm_distill runs (the working tree's, normally) and the versions of what it uses."""
    import openmm_distill

    facts = {"openmm_distill": openmm_distill.__version__, "openmm_distill_file": openmm_distill.__file__}
    for name in ("openmm-distill", "openmmtorch", "openmmml", "ase", "rdkit", "h5py", "triton", "numpy", "pytest"):
        facts[f"{name} (installed)"] = distribution_version(name)
    return facts


def probe_torch_force(platform_name: str) -> Dict[str, Any]:
    """Run ``torch_force_probe.py`` in a child process: does openmmtorch import, and does a TorchForce
    compute an energy on ``platform_name`` (with and without CUDA graphs)?

    A child, because a libtorch that does not match the one openmmtorch was built against can crash
    the process that loads it; here that costs only the probe. The child prints one JSON line per stage,
    so a crash still says how far it got.
    """
    cmd = [sys.executable, str(HERE / "torch_force_probe.py"), "--platform", platform_name]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"status": "timed out", "timeout_s": PROBE_TIMEOUT_S}
    stages = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result: Dict[str, Any] = stages[-1] if stages else {}
    result["returncode"] = out.returncode
    if out.returncode != 0:
        result["stderr_tail"] = out.stderr[-2000:]
    return result


def torch_backend_usable(probe: Dict[str, Any], platform_name: str) -> Optional[str]:
    """None when the probe ran a TorchForce on ``platform_name``, else why not (one line)."""
    run = probe.get("contexts", {}).get(f"{platform_name}, cuda_graphs=False", {})
    if run.get("ok"):
        return None
    if probe.get("returncode", 0) < 0:
        return f"the TorchForce probe crashed (signal {-probe['returncode']}) at stage {probe.get('stage')!r}"
    return run.get("error") or probe.get("openmmtorch_error") or probe.get("status") or "TorchForce did not run"
