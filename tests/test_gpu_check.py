"""device/gpu_check.py on this CPU: the CPU platform stands in for CUDA, small sizes, few steps.

It is the script a lent GPU runs once (issue #19), so every part must leave a result or a recorded
error in the JSON, and bad arguments must be one clear line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "device" / "gpu_check.py"
PARTS = ("environment", "platform_tests", "agreement", "training", "md_speed", "graph_capture")



def run_check(*args: str, timeout: float = 300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENMM_CPU_THREADS": "1"}
    env.pop("OD_TEST_PLATFORM", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """One quick run (about 20 s on a 2-core machine: imports, the pytest child, small MD and training)."""
    out = tmp_path_factory.mktemp("gpu-check")
    run = run_check("--quick", "--students", "tiny,original", "--out", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text())


def test_every_part_has_a_result_or_a_recorded_reason(quick_results):
    parts = quick_results["parts"]
    assert list(parts) == list(PARTS)
    for name, part in parts.items():
        assert part["status"] in ("ok", "skipped", "error"), name
        assert part["status"] != "error" or part["error"], name
        assert part["status"] != "skipped" or part["reason"], name
    assert quick_results["finished_utc"] and quick_results["elapsed_s"] > 0
    # On a CPU only the CUDA-graph capture does not apply.
    assert [n for n, p in parts.items() if p["status"] != "ok"] == ["graph_capture"]
    assert "CUDA" in parts["graph_capture"]["reason"]


def test_environment_names_platforms_and_the_torch_force_probe(quick_results):
    env = quick_results["parts"]["environment"]["result"]
    assert {"Reference", "CPU"} <= {p["name"] for p in env["openmm"]["platforms"]}
    assert env["platform_available"] and env["gpu"]["torch"] and "cuda_available" in env["gpu"]
    assert env["torch_force_probe"]["stage"] in ("done", "openmmtorch failed")
    assert Path(env["package"]["openmm_distill_file"]).is_relative_to(REPO)  # the working tree's code ran


def test_platform_tests_ran_through_the_marker(quick_results):
    tests = quick_results["parts"]["platform_tests"]["result"]
    assert tests["OD_TEST_PLATFORM"] == "CPU" and tests["returncode"] == 0
    assert tests["tests"] >= 1 and tests["failures"] == tests["errors"] == 0 and tests["passed"]


def test_md_agreement_and_training_rows(quick_results):
    parts = quick_results["parts"]
    rows = parts["md_speed"]["result"]["rows"]
    assert {(r["student"], r["atoms"], r["variant"]) for r in rows} == {
        (s, n, b) for s in ("tiny", "original") for n in (21, 102) for b in ("torch", "python")}
    for row in rows:
        assert row["status"] in ("ok", "skipped", "error")
        if row["status"] == "ok":
            assert row["steps_per_s"] > 0 and row["energy_finite_after"]
    agreement = parts["agreement"]["result"]
    assert agreement["compared"] == 8 and agreement["all_within_float32_tolerance"]
    runs = parts["training"]["result"]["runs"]
    assert list(runs) == ["cpu"] and runs["cpu"]["structures_per_s"] > 0
    targets = quick_results["targets"]
    assert targets["original_21_atoms_steps_per_s"]["value"] > 0
    assert targets["original_5001_atoms_steps_per_s"]["met"] is None  # not measured in quick mode


@pytest.mark.parametrize("args, message", [
    (["--sizes", "20"], "--sizes '20': choose from 21,102,999,5001"),
    (["--backends", "jax"], "--backends 'jax': choose from torch,python,inductor"),
    (["--parts", "md"], "--parts 'md': choose from environment,"),
])
def test_bad_arguments_are_one_clear_line(tmp_path, args, message):
    run = run_check("--out", str(tmp_path), *args, timeout=60)
    assert run.returncode == 2
    assert message in run.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "gpu_check.json").exists()
