"""Process settings that make a student fast on CPUs: threads and the memory allocator.

Why the allocator matters: a student call allocates a handful of per-edge
tensors (edges x 3 x hidden floats: 4 MB at 100 atoms, 400 MB at 5,000) and
frees them again. glibc serves such large blocks with ``mmap`` and returns them
to the kernel on ``free``, so every call page-faults its working set in afresh.
On this project's 2-core test machine that was half of a 5,000-atom call
(51 % system time) and a fifth of a 100-atom one. :func:`keep_freed_memory`
tells glibc to serve them from the heap and to keep freed memory for reuse,
the in-process equivalent of the ``MALLOC_MMAP_MAX_`` / ``MALLOC_TRIM_THRESHOLD_``
environment variables (or of preloading jemalloc/tcmalloc, which the PyTorch
CPU performance guides recommend). The price: the process keeps its peak memory
until it exits, so the switch is the application's choice: the ``openmm-distill``
command line, the protocols and the trainer turn it on; loading a student or making
an OpenMM System with one (:mod:`openmm_distill.api`) does not. Set
``OPENMM_DISTILL_MALLOC=system`` to leave the allocator alone everywhere.
"""
from __future__ import annotations

import ctypes
import os
import platform
from typing import Optional

from openmm_distill.errors import ConfigError

MALLOC_ENV_VAR = "OPENMM_DISTILL_MALLOC"
# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1

_allocator_tuned: Optional[bool] = None


def keep_freed_memory() -> bool:
    """Make glibc keep and reuse freed memory instead of returning it to the kernel.

    Idempotent. Returns True when the setting is active, False where it does not
    apply (not glibc, or ``OPENMM_DISTILL_MALLOC=system``).
    """
    global _allocator_tuned
    if _allocator_tuned is not None:
        return _allocator_tuned
    choice = os.environ.get(MALLOC_ENV_VAR, "keep").strip().lower()
    if choice not in ("keep", "system"):
        # Not cached: every later load reports the bad value again.
        raise ConfigError(f"{MALLOC_ENV_VAR}={choice!r} is not one of 'keep' (default) or 'system'")
    _allocator_tuned = False
    if choice == "system" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        # mallopt returns 1 on success. No mmap for large blocks (heap instead), never trim the heap.
        _allocator_tuned = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
    except (OSError, AttributeError):
        _allocator_tuned = False
    return _allocator_tuned


def limit_threads(n: Optional[int]) -> None:
    """Use ``n`` threads for torch and OpenMP (and OpenMM's CPU platform); None or 0 leaves them alone.

    On a shared, busy machine, two OpenMP threads fighting other processes for
    two cores made a 9-atom student ~100x slower than one thread did.
    """
    if not n:
        return
    import torch

    os.environ["OMP_NUM_THREADS"] = str(int(n))
    os.environ["OPENMM_CPU_THREADS"] = str(int(n))
    torch.set_num_threads(int(n))
