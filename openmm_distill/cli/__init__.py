"""``openmm-distill`` command line: one sub-command per module in this folder.

Each sub-command module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Register a new one in :data:`COMMANDS` (the error-contract
test, tests/test_cli_errors.py, then asks for a bad-input case for it). Sub-command
modules import their heavy and optional dependencies inside ``run`` so ``--help``
stays fast and optional dependencies stay optional.

Errors: :func:`main` prints a :class:`~openmm_distill.errors.DistillError` or Ctrl-C
as one line and returns 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Dict, List, Optional

# Importing any openmm_distill module runs the package's __init__ first, which imports torch before openmm.
from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.errors import DistillError
from openmm_distill.version import __version__

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
    parser.add_argument("--version", action="version", version=__version__)
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
    """Run one sub-command; returns its exit code.

    A user's mistake (any :class:`~openmm_distill.errors.DistillError`) and Ctrl-C
    end as one line on stderr, ``openmm-distill <command>: error: ...``, and exit
    code 2, the code argparse uses for a bad command line. Set
    ``OPENMM_DISTILL_DEBUG=1`` to see the traceback instead.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        # Commands are long jobs that call a student or a trainer many times; a library
        # user who loads a student keeps the process's allocator as it was.
        keep_freed_memory()
        return int(args._run(args) or 0)
    except (DistillError, KeyboardInterrupt) as exc:
        if os.environ.get("OPENMM_DISTILL_DEBUG"):
            raise
        message = str(exc) if isinstance(exc, DistillError) else "interrupted (Ctrl-C)"
        print(f"openmm-distill {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
