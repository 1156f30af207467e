"""``openmm-distill compile``: training checkpoint -> TorchScript file for OpenMM."""
from __future__ import annotations

HELP = "compile a student checkpoint to a TorchScript file for OpenMM"
DESCRIPTION = """Compile a training checkpoint into the file OpenMM loads.

The compiled module takes positions in nm (and box vectors in nm when periodic)
and returns the energy in kJ/mol. Its metadata (elements, cutoff, units,
preset, versions, provenance) is embedded in the file; see `openmm-distill info`.
The scripted module is checked against the eager model before anything is written.

example:
  openmm-distill compile runs/tiny/best.pt -o tiny.pt
"""


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="student checkpoint (.pt) written by training or save_checkpoint")
    parser.add_argument("-o", "--output", required=True, help="compiled file to write (.pt)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="arithmetic of the deployed network (default: float32)")


def run(args) -> int:
    from openmm_distill.export import compile_student
    from openmm_distill.models import load_checkpoint

    model, payload = load_checkpoint(args.checkpoint)
    meta = dict(payload.get("provenance") or {})
    meta["source_checkpoint"] = str(args.checkpoint)
    out = compile_student(model, args.output, dtype=args.dtype, preset=payload.get("preset"), metadata=meta)
    print(f"wrote {args.output}: {out['preset']} student, {out['n_parameters']:,} parameters, "
          f"elements {' '.join(out['element_symbols'])}, cutoff {out['cutoff_nm']} nm, {out['dtype']}; "
          f"scripted vs eager max |dF| = {out['scripted_vs_eager']['force_max_abs_diff_kj_per_mol_nm']:.2e} kJ/mol/nm")
    return 0
