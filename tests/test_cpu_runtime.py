"""Process settings for CPU speed: the allocator switch and the thread limit.

The allocator setting is process-wide and one-way, so each case runs in a child process.
"""
import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from openmm_distill.cpu_runtime import keep_freed_memory
first = keep_freed_memory()
second = keep_freed_memory()
# glibc's mallinfo2: after a 64 MB block is freed, a kept heap still holds it ('fordblks'),
# while the default allocator would have unmapped it (mmap is used above 128 kB-32 MB).
import torch
x = torch.empty(16 * 2**20, dtype=torch.float32); x.fill_(1.0); del x
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
info = libc.mallinfo2()
print(first, second, info.fordblks >= 64 * 2**20)
"""


def _probe(mode):
    env = dict(os.environ)
    if mode is None:
        env.pop("OPENMM_DISTILL_MALLOC", None)
    else:
        env["OPENMM_DISTILL_MALLOC"] = mode
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@glibc_only
def test_keep_freed_memory_keeps_a_freed_large_block_in_the_heap():
    out = _probe(None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]


@glibc_only
def test_system_allocator_is_left_alone_when_asked():
    out = _probe("system")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "False"]


def test_bad_allocator_choice_names_the_value_and_the_choices():
    out = _probe("jemalloc")
    assert out.returncode != 0
    assert "OPENMM_DISTILL_MALLOC='jemalloc'" in out.stderr and "'keep'" in out.stderr and "'system'" in out.stderr


def test_limit_threads_sets_torch_and_openmp(monkeypatch):
    import torch

    from openmm_distill.cpu_runtime import limit_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # monkeypatch restores both afterwards
    monkeypatch.setenv("OPENMM_CPU_THREADS", "7")
    try:
        limit_threads(1)
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENMM_CPU_THREADS"] == "1"
        limit_threads(None)  # leaves everything as it was
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bad_allocator_choice_is_reported_on_every_load_not_only_the_first():
    code = """
from openmm_distill.cpu_runtime import keep_freed_memory
from openmm_distill.errors import ConfigError
raised = 0
for _ in range(2):
    try:
        keep_freed_memory()
    except ConfigError:
        raised += 1
print(raised)
"""
    env = dict(os.environ, OPENMM_DISTILL_MALLOC="jemalloc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2"]


ALLOCATOR_AFTER = """
import sys
import openmm_distill as od
from openmm_distill import cpu_runtime
{action}
print(cpu_runtime._allocator_tuned)
"""


@glibc_only
def test_loading_a_student_and_making_a_system_leave_the_allocator_alone():
    """A library user's process keeps its allocator: no mallopt call behind their back."""
    action = ("from openmm_distill.systems.resolve import resolve_system\n"
              "molsys = resolve_system('ethanol')\n"
              "student = od.load_student('ultra-tiny')\n"
              "od.create_system(molsys.topology, student, backend='torch')\n"
              "od.create_system(molsys.topology, student, backend='python')")
    env = {k: v for k, v in os.environ.items() if k != "OPENMM_DISTILL_MALLOC"}
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_AFTER.format(action=action)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "None"  # keep_freed_memory was never called


@glibc_only
def test_the_command_line_switches_the_allocator_on():
    action = "from openmm_distill.cli import main\nassert main(['presets']) == 0"
    env = {k: v for k, v in os.environ.items() if k != "OPENMM_DISTILL_MALLOC"}
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_AFTER.format(action=action)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "True"
