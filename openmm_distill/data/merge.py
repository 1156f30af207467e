"""Merge datasets (e.g. the shards of an array job) into one file."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

from openmm_distill.data.store import DatasetWriter, LabelledDataset, partial_path, publish
from openmm_distill.errors import ConfigError


@dataclass
class MergeReport:
    """What :func:`merge_datasets` wrote."""

    output: str
    inputs: List[str]
    n_structures: int
    n_failures: int
    n_molecules: int

    def summary(self) -> str:
        return (
            f"merged {len(self.inputs)} files into {self.output}: {self.n_structures} structures, "
            f"{self.n_molecules} molecules, {self.n_failures} recorded failures"
        )


def merge_datasets(
    inputs: Sequence[str],
    output: str,
    *,
    overwrite: bool = False,
    compression: str = "gzip",
    creation_command: Optional[str] = None,
    block_size: int = 2048,
) -> MergeReport:
    """Concatenate datasets labelled by the same teacher into ``output``.

    Structures keep their keys, provenance and molecule names (molecule ids
    are renumbered); recorded failures and completed items are merged. The
    result is written to ``<output>.partial`` and published atomically.

    Parameters
    ----------
    inputs : sequence of str
        Published dataset files (not ``.partial``), in the order to concatenate.
    output : str
    overwrite : bool
        Allow replacing an existing ``output``.
    compression : str
        ``"gzip"``, ``"lzf"`` or ``"none"``.
    creation_command : str, optional
        Recorded in the file; default: this process's command line.
    block_size : int
        Structures copied per write.

    Raises
    ------
    ConfigError
        If the inputs used different teachers (name, version or settings),
        mix periodic and non-periodic data, share a structure key, are
        unfinished, or ``output`` exists without ``overwrite``.
    """
    inputs = [os.fspath(p) for p in inputs]
    if not inputs:
        raise ConfigError("merge needs at least one input dataset")
    output = os.fspath(output)
    if os.path.abspath(output) in {os.path.abspath(p) for p in inputs}:
        raise ConfigError(f"merge output {output} is also one of its inputs")
    if os.path.exists(output) and not overwrite:
        raise ConfigError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    datasets = [LabelledDataset(p) for p in inputs]
    try:
        first = datasets[0].metadata
        sampling_configs = []
        for path, ds in zip(inputs, datasets):
            meta = ds.metadata
            if not meta.get("complete", False):
                raise ConfigError(f"{path} is not a finished dataset (its job did not complete)")
            for key in ("name", "version", "settings"):
                a, b = first["teacher"][key], meta["teacher"][key]
                if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
                    raise ConfigError(
                        f"cannot merge datasets from different teachers: {inputs[0]} has teacher {key} {a!r}, "
                        f"{path} has {b!r}"
                    )
            if ds.periodic != datasets[0].periodic:
                raise ConfigError(f"cannot merge periodic and non-periodic datasets ({inputs[0]}, {path})")
            if meta.get("sampling_config") not in sampling_configs:
                sampling_configs.append(meta.get("sampling_config"))
        seen = {}
        for path, ds in zip(inputs, datasets):
            for key in ds.keys:
                if key in seen:
                    raise ConfigError(f"structure key {key!r} is in both {seen[key]} and {path}; inputs must not overlap")
                seen[key] = path
        metadata = {
            "teacher": first["teacher"],
            "sampling_config": sampling_configs[0] if len(sampling_configs) == 1 else {"merged": sampling_configs},
            "creation_command": creation_command if creation_command is not None else " ".join(sys.argv),
            "merged_from": [os.path.basename(p) for p in inputs],
        }
        tmp = partial_path(output)
        with DatasetWriter(tmp, metadata=metadata, compression=compression) as writer:
            for ds in datasets:
                for lo in range(0, len(ds), block_size):
                    writer.append(ds.block(lo, lo + block_size))
                    writer.commit()
                writer.add_failures(ds.failures)
                writer.mark_completed(ds.completed_items)
                writer.commit()
            n_structures = writer.n_structures
            n_failures = len(writer.failed_keys)
            n_molecules = writer.n_molecules
            writer.close(complete=True)
    finally:
        for ds in datasets:
            ds.close()
    publish(tmp, output)
    return MergeReport(output, inputs, n_structures, n_failures, n_molecules)
