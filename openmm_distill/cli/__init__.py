"""``openmm-distill`` command line: one sub-command per module in this folder.

Each sub-command module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Register a new one in :data:`COMMANDS`; modules are
imported lazily so ``--help`` stays fast and optional dependencies stay optional.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Dict, List, Optional

import openmm_distill  # noqa: F401  (imports torch before openmm; see package docstring)

# name -> module (relative to this package). Order is the order shown in --help.
COMMANDS: Dict[str, str] = {
    "pipeline": "pipeline",
    "demo": "demo",
    "presets": "presets",
    "compile": "compile",
    "info": "info",
    "systems": "systems",
    "label": "label",
    "explore": "explore",
    "dataset": "dataset",
    "train": "train",
    "evaluate": "evaluate",
    "protocol": "protocol",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openmm-distill",
        description="Distil a foundation force field into a small student and run it in OpenMM.",
    )
    parser.add_argument("--version", action="version", version=openmm_distill.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (openmm_distill.errors.DistillError, FileNotFoundError, ValueError) as exc:
        # Bad input is reported as one line; set OPENMM_DISTILL_DEBUG=1 for the traceback.
        if os.environ.get("OPENMM_DISTILL_DEBUG"):
            raise
        print(f"openmm-distill {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
