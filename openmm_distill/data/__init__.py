"""Datasets: geometry sampling, teacher labelling, the HDF5 format, validation,
statistics and PyTorch loading. Units: Angstrom, eV, eV/Angstrom.

Main entry points:

* :func:`label` / :func:`relabel` / :func:`merge_datasets` (:mod:`.labelling`, :mod:`.merge`): build datasets;
* :class:`SamplingConfig`, :func:`sample_molecule` (:mod:`.sampling`): how geometries are made;
* :class:`LabelledDataset`, :func:`open_dataset`, :class:`DatasetWriter` (:mod:`.store`): the file format;
* :func:`validate_dataset`, :func:`filter_dataset` (:mod:`.validation`);
* :func:`compute_statistics`, :func:`plot_statistics` (:mod:`.statistics`);
* :class:`StructureDataset`, :func:`collate_structures`, :func:`make_dataloader` (:mod:`.torch_dataset`):
  training input (the split by molecule is :func:`openmm_distill.training.datasets.split_indices`).
"""
from openmm_distill.data.labelling import LabelReport, WorkItem, label, parse_shard, relabel, shard_items
from openmm_distill.data.merge import MergeReport, merge_datasets
from openmm_distill.data.records import Failure, Geometry, LabelledStructure
from openmm_distill.data.sampling import SamplingConfig, geometries_from_arrays, sample_molecule
from openmm_distill.data.statistics import DatasetStatistics, compute_statistics, plot_statistics
from openmm_distill.data.store import (
    FORMAT_VERSION,
    DatasetWriter,
    LabelledDataset,
    open_dataset,
    read_metadata,
    write_structures,
)
from openmm_distill.data.torch_dataset import (
    StructureDataset,
    collate_structures,
    make_dataloader,
    molecule_indices,
)
from openmm_distill.data.validation import ValidationReport, filter_dataset, validate_dataset

__all__ = [
    "FORMAT_VERSION",
    "DatasetStatistics",
    "DatasetWriter",
    "Failure",
    "Geometry",
    "LabelReport",
    "LabelledDataset",
    "LabelledStructure",
    "MergeReport",
    "SamplingConfig",
    "StructureDataset",
    "ValidationReport",
    "WorkItem",
    "collate_structures",
    "compute_statistics",
    "filter_dataset",
    "geometries_from_arrays",
    "label",
    "make_dataloader",
    "merge_datasets",
    "molecule_indices",
    "open_dataset",
    "parse_shard",
    "plot_statistics",
    "read_metadata",
    "relabel",
    "sample_molecule",
    "shard_items",
    "validate_dataset",
    "write_structures",
]
