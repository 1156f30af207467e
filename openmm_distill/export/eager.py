"""The eager twin of a compiled student: same weights, same bound atoms, plain PyTorch.

A TorchScript file carries its weights but runs only through TorchScript. Two users need
the module as ordinary Python instead: :func:`openmm_distill.export.rebuild.rebuild_compiled`
(recompile with this version's code) and :func:`inductor_deployed` (``torch.compile``,
which traces Python, not TorchScript), used by the ``inductor`` OpenMM backend and the
ASE calculator.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

import torch
from torch import nn

from openmm_distill.export.deployed import DeployedStudent
from openmm_distill.export.torchscript import _DTYPES


def eager_model(module: torch.jit.ScriptModule, meta: Dict[str, Any]) -> nn.Module:
    """The student network of a compiled module (``module.model``) as an eager model, in the file's dtype."""
    from openmm_distill.models.registry import build_model

    model = build_model(meta["architecture"], meta["elements"], **meta["hyperparameters"])
    if meta.get("dtype", "float32") == "float64":
        model = model.double()  # before loading, or the float64 weights would be rounded through float32
    model.load_state_dict(module.model.state_dict())
    return model


def eager_deployed(module: torch.jit.ScriptModule, meta: Dict[str, Any]) -> DeployedStudent:
    """A :class:`DeployedStudent` computing what ``module`` computes, bound to the same atoms."""
    dtype = _DTYPES[meta.get("dtype", "float32")]
    deployed = DeployedStudent(eager_model(module, meta).eval(), dtype, int(module.all_pairs_max_atoms))
    for p in deployed.parameters():
        p.requires_grad_(False)
    if module.species.shape[0] > 0:
        indices = module.indices if module.indices.shape[0] > 0 else None
        deployed.set_atoms(module.atomic_numbers, indices)
    return deployed


def inductor_deployed(module: torch.jit.ScriptModule, meta: Dict[str, Any], device: str = "cpu") -> DeployedStudent:
    """The eager twin with its network compiled by TorchInductor (compilation happens on the first call).

    Only the network is compiled: the neighbour search has data-dependent shapes and stays
    eager. Shapes are dynamic, so the changing number of neighbour pairs does not recompile.
    """
    deployed = eager_deployed(module, meta).to(device)
    if device == "cpu":
        # torch warns "No CUDA runtime is found" while building CPU kernels: true and beside the point.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    network = deployed.model
    network.atomic_energies_from_vectors = torch.compile(network.atomic_energies_from_vectors, dynamic=True)
    return deployed


def check_cpp_compiler(what: str, instead: str) -> None:
    """Raise a clear error when TorchInductor has no C++ compiler to build CPU kernels with.

    ``what`` names the option that needs it, ``instead`` the alternatives (for the message).
    """
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # pragma: no cover - private API moved; let torch.compile report it
        return
    try:
        get_cpp_compiler()
    except Exception as exc:
        raise RuntimeError(
            f"{what} needs a C++ compiler for TorchInductor's CPU kernels (g++ or clang++ on PATH, or the CXX "
            f"environment variable); install one, or use {instead} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
