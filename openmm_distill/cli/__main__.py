"""``python -m openmm_distill.cli``: the ``openmm-distill`` command.

Also the entry point for data-parallel training:
``torchrun --nproc_per_node=4 -m openmm_distill.cli train RECIPE.yaml ...``.
"""
import sys

from openmm_distill.cli import main

sys.exit(main())
