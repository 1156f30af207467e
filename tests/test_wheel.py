"""A library that installs from a wheel: build the wheel, install it outside the checkout,
and run the commands a new user runs first, from a folder where the source tree is not
importable. Everything those commands read (catalog, structures, recipes, built-in
configs, shipped students) has to be package data for this to pass.

The wheel is installed with ``pip install --no-deps --target``: the dependencies (torch,
OpenMM, ...) come from this environment, the package itself only from the wheel.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from (an sdist holds the same): the packages (openmm_distill and its
# openmm-ml plugin package) and the project files; never the checkout's build/ or runs/.
SOURCES = tuple(sorted(p.name for p in REPO.glob("openmm_distill*") if (p / "__init__.py").is_file())) + (
    "pyproject.toml", "README.md", "LICENSE")

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=900):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\nstdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder holding the installed wheel, its console script, environment for running it)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OPENMM_DISTILL"))}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # Offline, from this environment's setuptools and wheel (both in the test extra).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"),
          str(src)], cwd=root, env=env)
    wheels = list((root / "dist").glob("openmm_distill-*.whl"))
    assert len(wheels) == 1, wheels
    site = root / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheels[0])], cwd=root,
         env=env)
    env["PYTHONPATH"] = str(site)
    return site, site / "bin" / "openmm-distill", env


@pytest.fixture()
def workdir(tmp_path):
    """A working directory outside the checkout (commands write runs/ there)."""
    assert REPO not in tmp_path.parents
    return tmp_path


def test_the_wheel_is_what_runs_and_carries_the_data(installed, workdir):
    site, _, env = installed
    code = ("import sys, importlib.metadata as md\n"
            "import openmm_distill, openmm_distill.systems as s, openmm_distill.recipes as r\n"
            "print(openmm_distill.__file__)\n"
            "print(len(s.molecules('test')), s.structure_path('aspirin').name)\n"
            "print(r.builtin_names('training'))\n"
            "plugins = md.entry_points(group='openmmml.potentials')\n"
            "print(sys.modules[plugins['openmm-distill'].load().__module__].__file__)\n")
    out = _run([sys.executable, "-c", code], cwd=workdir, env=env)
    origin, counts, recipes, plugin = out.stdout.strip().splitlines()
    assert Path(origin).is_relative_to(site), origin  # not the checkout's editable install
    assert Path(plugin).is_relative_to(site), plugin  # openmm-ml finds the potentials in the wheel
    assert counts == "64 aspirin.sdf"
    assert "tiny" in recipes and "original" in recipes
    licence = list(site.glob("openmm_distill-*.dist-info/**/LICENSE"))
    assert licence and "MIT License" in licence[0].read_text()


def test_info(installed, workdir):
    _, exe, env = installed
    out = _run([str(exe), "info"], cwd=workdir, env=env)
    for name in ("original", "tiny", "ultra-tiny"):
        assert name in out.stdout


def test_label_a_split(installed, workdir):
    _, exe, env = installed
    _run([str(exe), "label", "--split", "test", "--limit", "1", "-o", "test.h5", "--sampling-config", "shipped_eval",
          "--md-snapshots", "0", "--conformers", "1", "--random-samples", "1", "--quiet"], cwd=workdir, env=env)
    out = _run([str(exe), "dataset", "stats", "test.h5", "--json"], cwd=workdir, env=env)
    assert '"n_structures": 1' in out.stdout


def test_protocol_nve_on_a_catalog_molecule(installed, workdir):
    _, exe, env = installed
    _run([str(exe), "protocol", "nve", "--student", "ultra-tiny", "--systems", "aspirin", "--equilibration-ps", "0.05",
          "--length-ps", "0.1", "--threads", "1", "--no-progress", "-o", "nve"], cwd=workdir, env=env)
    assert (workdir / "nve" / "nve.json").is_file()


def test_pipeline(installed, workdir):
    _, exe, env = installed
    shrink = ["molecules=[ethanol]", "workers=1",
              "sampling.n_conformers=1", "sampling.random_samples=1", "sampling.normal_mode_samples=0",
              "sampling.md_snapshots=0",
              "evaluation_sampling.random_samples=1", "evaluation_sampling.md_snapshots=0",
              "training.set.optim.epochs=1",
              "protocols.nve_ps=0.1", "protocols.nve_equilibration_ps=0.05", "protocols.stability=false",
              "protocols.throughput=false", "loop.max_rounds=0"]
    _run([str(exe), "pipeline", "--output-dir", "demo"] + [a for s in shrink for a in ("--set", s)],
         cwd=workdir, env=env)
    assert any((workdir / "demo").rglob("*.pt"))
