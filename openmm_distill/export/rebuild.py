"""Rebuild a compiled student with this version's deployed code, keeping its weights and metadata.

A TorchScript file carries the code it was compiled with. When the deployed code
improves (e.g. the neighbour search), students compiled earlier keep the old code;
rebuilding them gives them the new one without the checkpoint or any retraining.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from openmm_distill.errors import ConfigError
from openmm_distill.export.eager import eager_model
from openmm_distill.export.torchscript import _DTYPES, compile_student, load_compiled, verify_agreement

# Written afresh by compile_student for the new file; everything else (training config,
# data hashes, metrics, provenance) is carried over unchanged.
_REGENERATED = ("kind", "format_version", "created", "package_version", "torch_version", "scripted_vs_eager",
                "n_parameters", "units")


def rebuild_compiled(source: str | os.PathLike, output_path: str | os.PathLike,
                     dtype: Optional[str] = None) -> Dict[str, Any]:
    """Recompile ``source`` (a compiled student) to ``output_path``; returns the new metadata.

    The weights come from the compiled module itself, and the new file must give the
    old one's energies and forces before it replaces anything (so rebuilding in place
    is safe). ``dtype``, if given, must be the file's own: the arithmetic is kept.
    Raises :class:`~openmm_distill.errors.IncompatibleFileError` if ``source`` is not
    a compiled student.
    """
    old, meta = load_compiled(source)
    own_dtype = meta.get("dtype", "float32")
    if dtype is not None and dtype != own_dtype:
        raise ConfigError(f"dtype {dtype!r}: {str(source)!r} is a compiled {own_dtype} student and is rebuilt as "
                          f"{own_dtype}; compile its checkpoint to change the arithmetic")
    model = eager_model(old, meta)
    carried = {k: v for k, v in meta.items() if k not in _REGENERATED}
    carried["rebuilt_from"] = {"path": str(source), "package_version": meta.get("package_version"),
                               "created": meta.get("created")}
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and checked against the source before it replaces anything.
    fd, tmp = tempfile.mkstemp(prefix=output_path.name + ".", suffix=".rebuild.pt", dir=output_path.parent)
    os.close(fd)
    try:
        new_meta = compile_student(model, tmp, dtype=own_dtype, preset=meta.get("preset"), metadata=carried,
                                   all_pairs_max_atoms=int(old.all_pairs_max_atoms))
        verify_agreement(old, load_compiled(tmp)[0], meta["elements"], _DTYPES[own_dtype],
                         what=f"rebuilt student disagrees with {str(source)!r}")
        os.replace(tmp, output_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return new_meta
