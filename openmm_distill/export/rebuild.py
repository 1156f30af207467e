"""Rebuild a compiled student with this version's deployed code, keeping its weights and metadata.

A TorchScript file carries the code it was compiled with. When the deployed code
improves (e.g. the neighbour search), students compiled earlier keep the old code;
rebuilding them gives them the new one without the checkpoint or any retraining.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

from openmm_distill.export.torchscript import compile_student, load_compiled

# Written afresh by compile_student for the new file; everything else (training config,
# data hashes, metrics, provenance) is carried over unchanged.
_REGENERATED = ("kind", "format_version", "created", "package_version", "torch_version", "scripted_vs_eager",
                "n_parameters", "units")


def rebuild_compiled(source: str | os.PathLike, output_path: str | os.PathLike) -> Dict[str, Any]:
    """Recompile ``source`` (a compiled student) to ``output_path``; returns the new metadata.

    The weights come from the compiled module itself, so the result computes the same
    energies and forces (checked: the eager model rebuilt from them must agree with
    the old file to float precision before anything is written).
    """
    from openmm_distill.models.registry import build_model

    old, meta = load_compiled(source)
    model = build_model(meta["architecture"], meta["elements"], **meta["hyperparameters"])
    weights = old.model.state_dict()
    if meta.get("dtype") == "float64":
        model = model.double()
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in weights.items()})
    carried = {k: v for k, v in meta.items() if k not in _REGENERATED}
    carried["rebuilt_from"] = {"path": str(source), "package_version": meta.get("package_version"),
                               "created": meta.get("created")}
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and checked against the source before it replaces
    # anything, so rebuilding a file in place cannot lose it.
    fd, tmp = tempfile.mkstemp(prefix=output_path.name + ".", suffix=".rebuild.pt", dir=output_path.parent)
    os.close(fd)
    try:
        new_meta = compile_student(model, tmp, dtype=meta.get("dtype", "float32"), preset=meta.get("preset"),
                                   metadata=carried, all_pairs_max_atoms=int(old.all_pairs_max_atoms))
        _check_same_energies(source, tmp, meta["elements"])
        os.replace(tmp, output_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return new_meta


def _check_same_energies(a, b, elements) -> None:
    """The rebuilt file must give the old file's energies and forces (a small random molecule)."""
    gen = torch.Generator().manual_seed(0)
    z = torch.tensor([elements[i % len(elements)] for i in range(12)])
    pos = torch.rand(12, 3, generator=gen, dtype=torch.float64) * 0.6
    out = []
    for path in (a, b):
        module, _ = load_compiled(path)
        module.set_atoms(z, None)
        p = pos.clone().requires_grad_(True)
        e = module(p, None)
        (g,) = torch.autograd.grad(e, p)
        out.append((float(e.detach()), g))
    (e0, g0), (e1, g1) = out
    if abs(e0 - e1) > 1e-4 * (abs(e0) + 1.0) or float((g0 - g1).abs().max()) > 1e-3 * (float(g0.abs().max()) + 1.0):
        raise RuntimeError(f"rebuilt student disagrees with {str(a)!r}: E {e0:.6g} vs {e1:.6g} kJ/mol; not written")
