"""Child process of gpu_check.py: does openmm-torch's TorchForce run here?

Prints the state so far as one JSON line after each stage (a crash still leaves the last one):
openmmtorch's import, then the energy of one water molecule under the shipped ``tiny`` student
in a TorchForce on the given platform, without and (on CUDA) with ``useCUDAGraphs``.

    python device/torch_force_probe.py --platform CUDA
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict

import gpu_environment

# One water molecule, nm: enough atoms for a student to see a neighbour.
WATER_Z = (8, 1, 1)
WATER_NM = ((0.0, 0.0, 0.0), (0.09572, 0.0, 0.0), (-0.02399, 0.09266, 0.0))


def report(state: Dict[str, Any], stage: str) -> None:
    state["stage"] = stage
    print(json.dumps(state), flush=True)


def water_topology():
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue("HOH", topology.addChain())
    for k, z in enumerate(WATER_Z):
        topology.addAtom(f"A{k}", app.element.Element.getByAtomicNumber(z), residue)
    return topology


def torch_force_energy(platform_name: str, cuda_graphs: bool) -> float:
    """Potential energy (kJ/mol) of the water molecule under ``tiny`` in a TorchForce."""
    import openmm_distill as od

    import openmm
    from openmm import unit

    system = od.create_system(water_topology(), "tiny", backend="torch", cuda_graphs=cuda_graphs)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform_name))
    context.setPositions(WATER_NM)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", default="CUDA", help="OpenMM platform to run the TorchForce on")
    args = parser.parse_args(argv)
    gpu_environment.use_working_tree()
    state: Dict[str, Any] = {"platform": args.platform}
    report(state, "start")
    if args.platform == "CUDA":
        state["preloaded"] = gpu_environment.preload_cuda_libraries()
    import openmm_distill  # noqa: F401  (torch, then openmm: OpenMM loads its plugins now)

    import openmm

    state["torch_plugin_failures"] = [f for f in openmm.Platform.getPluginLoadFailures() if "Torch" in f]
    report(state, "imported openmm")
    try:
        from openmm_distill.openmm_integration.torch_backend import import_openmmtorch

        import_openmmtorch()
        state["openmmtorch"] = gpu_environment.distribution_version("openmmtorch")
    except Exception as exc:  # the finding itself: record it and stop
        state["openmmtorch_error"] = f"{type(exc).__name__}: {exc}"
        report(state, "openmmtorch failed")
        return 0
    report(state, "imported openmmtorch")
    state["contexts"] = {}
    for cuda_graphs in (False, True) if args.platform == "CUDA" else (False,):
        key = f"{args.platform}, cuda_graphs={cuda_graphs}"
        try:
            state["contexts"][key] = {"ok": True, "energy_kj_per_mol": torch_force_energy(args.platform, cuda_graphs)}
        except Exception as exc:
            state["contexts"][key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        report(state, f"ran {key}")
    report(state, "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
