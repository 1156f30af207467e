"""``openmm-distill compile``: training checkpoint (or an older compiled student) -> TorchScript file for OpenMM."""
from __future__ import annotations

HELP = "compile a student checkpoint (or rebuild a compiled student) to a TorchScript file for OpenMM"
DESCRIPTION = """Compile a training checkpoint into the file OpenMM loads.

The compiled module takes positions in nm (and box vectors in nm when periodic)
and returns the energy in kJ/mol. Its metadata (elements, cutoff, units,
preset, versions, provenance) is embedded in the file; see `openmm-distill info`.
The scripted module is checked against the eager model before anything is written.

Given a compiled student instead of a checkpoint, it rebuilds that student with this
version's deployed code (neighbour search, unit handling), keeping its weights and
metadata; the new file must give the old one's energies and forces. Do this for
students compiled before 2026-11-22 (`openmm-distill info FILE` shows `created`):
under TorchForce their periodic neighbour search cost up to a third extra per MD step.

examples:
  openmm-distill compile runs/tiny/best.pt -o tiny.pt
  openmm-distill compile old_tiny.pt -o tiny.pt        # rebuild a compiled student
"""


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="student checkpoint (.pt) written by training or save_checkpoint, "
                                           "or a compiled student to rebuild")
    parser.add_argument("-o", "--output", required=True, help="compiled file to write (.pt)")
    parser.add_argument("--dtype", default=None, choices=["float32", "float64"],
                        help="arithmetic of the deployed network (default: float32; a rebuilt student keeps its own)")


def run(args) -> int:
    from openmm_distill.errors import IncompatibleFileError
    from openmm_distill.export import compile_student
    from openmm_distill.models import load_checkpoint

    try:
        model, payload = load_checkpoint(args.checkpoint)
    except IncompatibleFileError as not_a_checkpoint:
        out = _rebuild(args, not_a_checkpoint)
    else:
        meta = dict(payload.get("provenance") or {})
        meta["source_checkpoint"] = str(args.checkpoint)
        out = compile_student(model, args.output, dtype=args.dtype or "float32", preset=payload.get("preset"),
                              metadata=meta)
    print(f"wrote {args.output}: {out['preset']} student, {out['n_parameters']:,} parameters, "
          f"elements {' '.join(out['element_symbols'])}, cutoff {out['cutoff_nm']} nm, {out['dtype']}; "
          f"scripted vs eager max |dF| = {out['scripted_vs_eager']['force_max_abs_diff_kj_per_mol_nm']:.2e} kJ/mol/nm")
    return 0


def _rebuild(args, not_a_checkpoint: Exception):
    """The input is not a checkpoint: rebuild it if it is a compiled student, else report both readings."""
    from openmm_distill.errors import IncompatibleFileError
    from openmm_distill.export.rebuild import rebuild_compiled

    try:
        return rebuild_compiled(args.checkpoint, args.output, dtype=args.dtype)
    except IncompatibleFileError as not_compiled:
        raise IncompatibleFileError(f"{not_a_checkpoint}; nor is it a compiled student ({not_compiled})") from None
