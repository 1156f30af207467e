"""Training speed of the ``original`` student: structures per second of one epoch, GPU against CPU.

The dataset is made on the spot (the GPU machine has no teacher installed): randomly displaced
aspirin and Ace-Ala9-Nme geometries, labelled by the shipped ``tiny`` student. The labels' quality
does not matter here, only that every device trains on the same structures the same way.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Sequence

import gpu_systems
import numpy as np
import torch

from openmm_distill.data.records import LabelledStructure
from openmm_distill.data.store import DatasetWriter
from openmm_distill.export.predict import CompiledPredictor
from openmm_distill.recipes import find_recipe
from openmm_distill.training import Trainer, load_config
from openmm_distill.units import NM_TO_ANGSTROM

LABELLER = "tiny"
DISPLACEMENT_ANGSTROM = 0.05
MOLECULE_SIZES = (21, 102)


def displaced_structures(n: int, seed: int = 0) -> List[SimpleNamespace]:
    """``n`` geometries (Angstrom), alternating between the two molecules, each atom displaced at random."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        ts = gpu_systems.test_system(MOLECULE_SIZES[k % len(MOLECULE_SIZES)])
        positions = ts.positions_nm * NM_TO_ANGSTROM + rng.normal(scale=DISPLACEMENT_ANGSTROM, size=ts.positions_nm.shape)
        out.append(SimpleNamespace(name=ts.name, key=f"{ts.name}/{k}", atomic_numbers=ts.atomic_numbers,
                                   positions=positions, box=None))
    return out


def write_dataset(path: Path, n: int) -> Path:
    """A labelled HDF5 dataset of ``n`` structures (eV, eV/Angstrom), labelled by ``tiny`` on the CPU."""
    predict = CompiledPredictor(LABELLER, device="cpu")
    labelled = []
    for s in displaced_structures(n):
        energy, forces = predict(s)
        labelled.append(LabelledStructure(key=s.key, molecule=s.name, atomic_numbers=np.asarray(s.atomic_numbers),
                                          positions=s.positions, energy=energy, forces=forces))
    with DatasetWriter(str(path), metadata={"teacher": {"name": f"student {LABELLER}"},
                                            "creation_command": "device/gpu_check.py"}) as writer:
        writer.append(labelled)
    return path


def trainer_for(dataset: Path, device: str, output_dir: Path) -> Trainer:
    """The ``original`` recipe on ``dataset``: one file split by structure, no compile, no logs."""
    overrides = [f"data.path={dataset}", "data.validation_path=null", "data.test_path=null",
                 "data.split=structure", "data.test_fraction=0.0", f"run.device={device}",
                 f"run.output_dir={output_dir}", "run.progress=false", "run.tensorboard=false", "run.compile=false"]
    return Trainer(load_config(find_recipe("original"), overrides))


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def epoch_speed(dataset: Path, device: str, output_dir: Path) -> Dict[str, Any]:
    """Two epochs on ``device``: the first warms up (CUDA context, allocator), the second is timed."""
    trainer = trainer_for(dataset, device, output_dir)
    t = time.perf_counter()
    setup = trainer.prepare()
    setup_s = time.perf_counter() - t
    n_train = len(setup.data.split.train)
    seconds = []
    for epoch in (0, 1):
        synchronize(device)
        t = time.perf_counter()
        metrics = trainer.train_epoch(epoch)
        synchronize(device)
        seconds.append(time.perf_counter() - t)
    return {"device": device, "torch_threads": torch.get_num_threads(), "training_structures": n_train,
            "batch_size": trainer.config.data.batch_size, "setup_s": round(setup_s, 3),
            "warmup_epoch_s": seconds[0], "timed_epoch_s": seconds[1], "structures_per_s": n_train / seconds[1],
            "mean_loss": metrics.get("loss"), "force_mae": metrics.get("force_mae")}


def run_training(log, n_structures: int, devices: Sequence[str]) -> Dict[str, Any]:
    """Epoch speed on each device (GPU first), and the GPU's speed-up over the CPU when both ran."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-training-") as tmp:
        tmp = Path(tmp)
        dataset = write_dataset(tmp / "displaced.h5", n_structures)
        log.result["dataset"] = {"structures": n_structures, "labeller": LABELLER,
                                 "molecules": [gpu_systems.test_system(n).name for n in MOLECULE_SIZES]}
        runs = log.result.setdefault("runs", {})
        for device in devices:
            try:
                runs[device] = epoch_speed(dataset, device, tmp / f"run-{device}")
            except Exception as exc:
                runs[device] = {"device": device, "error": f"{type(exc).__name__}: {exc}"[:2000]}
            log.save()
    speeds = {d: r["structures_per_s"] for d, r in runs.items() if "structures_per_s" in r}
    if "cuda" in speeds and "cpu" in speeds:
        log.result["cuda_over_cpu"] = speeds["cuda"] / speeds["cpu"]
    return log.result
