"""The labelling job: molecules -> sampled geometries -> teacher labels -> HDF5.

>>> from openmm_distill.data.labelling import label
>>> report = label([("ethanol", "CCO"), ("benzene", "c1ccccc1")], "data.h5",
...                teacher="gfn2-xtb", n_workers=2)                 # doctest: +SKIP
>>> print(report.summary())                                          # doctest: +SKIP

Work items and resume. One work item is one molecule: its geometries are
sampled and labelled by one worker, then written and committed by the main
process in one go (see :mod:`openmm_distill.data.store`), and the molecule is
recorded in ``completed_items``. A killed job restarted with ``resume=True``
reopens ``<output>.partial``, drops anything written after the last commit,
and skips completed molecules; sampling is deterministic per molecule
(seeded from the molecule name), so the result equals an uninterrupted run,
with no duplicated and no lost structure. The finished file is published with
:func:`os.replace`.

Failures. A :class:`~openmm_distill.errors.TeacherError` on a structure, an
MD run or a teacher Hessian, or an unparsable SMILES, is recorded (key and
reason) in the file and the report, and the job goes on.

Parallelism. ``n_workers > 1`` starts that many processes (``spawn``); each
builds its own teacher and runs single-threaded (``OMP_NUM_THREADS=1`` and
friends are set before the worker starts, as tblite parallelises with
OpenMP). With ``n_workers=1`` everything runs in the calling process with its
own thread settings. ``shard=(i, n)`` keeps molecules ``i, i+n, i+2n, ...``
of the input list (0-based) for cluster array jobs; label each shard to its
own file and combine them with :func:`merge_datasets`.

Relabelling. :func:`relabel` runs the same job on the geometries of an
existing dataset (no sampling), e.g. to label GFN2-xTB-sampled geometries with
SevenNet; it keeps keys, molecules and geometry provenance.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from openmm_distill.checksums import file_sha256
from openmm_distill.data.merge import merge_datasets  # noqa: F401  (part of this module's API)
from openmm_distill.data.records import Failure, Geometry, LabelledStructure
from openmm_distill.data.sampling import SamplingConfig, sample_molecule
from openmm_distill.data.store import DatasetWriter, open_dataset, partial_path, publish
from openmm_distill.errors import ConfigError, MissingFileError, TeacherError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class WorkItem:
    """One molecule to label: either a SMILES to sample or given geometries.

    Attributes
    ----------
    name : str
        Unique molecule name (no ``"/"``).
    smiles : str
        ``""`` when only geometries are given.
    geometries : list of Geometry, optional
        Label these as they are instead of sampling.
    """

    name: str
    smiles: str = ""
    geometries: Optional[List[Geometry]] = None


@dataclass
class ItemResult:
    """Outcome of one work item: labelled structures and failures."""

    name: str
    structures: List[LabelledStructure] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class LabelProgress:
    """Passed to the ``callback`` of :func:`label` after every committed work item."""

    item: str
    items_done: int
    items_total: int
    structures_written: int
    structures_total: int
    failures_total: int


@dataclass
class LabelReport:
    """Summary of a labelling run.

    Attributes
    ----------
    output : str
        Published file (or the ``.partial`` one if not published).
    n_items : int
        Molecules in this job (after sharding).
    n_items_skipped : int
        Already complete in a resumed ``.partial`` file.
    n_structures_written : int
        Structures labelled and written in this run.
    n_structures_total : int
        Structures in the file.
    n_failed : int
        Failures recorded in this run.
    n_failed_total : int
        Failures recorded in the file.
    failures : list of Failure
        This run's failures (key and reason).
    elapsed_s : float
    published : bool
    """

    output: str
    n_items: int = 0
    n_items_skipped: int = 0
    n_structures_written: int = 0
    n_structures_total: int = 0
    n_failed: int = 0
    n_failed_total: int = 0
    failures: List[Failure] = field(default_factory=list)
    elapsed_s: float = 0.0
    published: bool = False

    @property
    def structures_per_second(self) -> float:
        return self.n_structures_written / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        lines = [
            f"output: {self.output}",
            f"molecules: {self.n_items} ({self.n_items_skipped} already done, resumed)",
            f"structures: {self.n_structures_written} written in this run, {self.n_structures_total} in file",
            f"failed: {self.n_failed} in this run, {self.n_failed_total} in file",
            f"time: {self.elapsed_s:.1f} s ({self.structures_per_second:.1f} structures/s)",
        ]
        for failure in self.failures[:10]:
            lines.append(f"  failed {failure.key}: {failure.reason}")
        if len(self.failures) > 10:
            lines.append(f"  ... and {len(self.failures) - 10} more (stored in the file: failed_keys/failed_reasons)")
        return "\n".join(lines)


# -- inputs -------------------------------------------------------------------------
InputLike = Union[Tuple[str, str], Geometry, WorkItem, Any]


def parse_shard(shard: Union[None, str, Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """Parse ``"i/n"`` (0-based ``i`` in ``0..n-1``) or a tuple; ``None`` means no sharding.

    Raises
    ------
    ConfigError
        On a malformed value or ``i`` outside ``0..n-1``.
    """
    if shard is None or shard == "":
        return None
    if isinstance(shard, str):
        parts = shard.split("/")
        try:
            index, count = int(parts[0]), int(parts[1])
            if len(parts) != 2:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(f"shard must look like 'i/n' with 0 <= i < n, e.g. '0/4'; got {shard!r}") from None
    else:
        index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard index must satisfy 0 <= i < n (0-based), got {index}/{count}")
    return index, count


def shard_items(items: Sequence[Any], shard: Union[None, str, Tuple[int, int]]) -> List[Any]:
    """Deterministic round-robin partition: shard ``i/n`` keeps items ``i, i+n, i+2n, ...``."""
    parsed = parse_shard(shard)
    if parsed is None:
        return list(items)
    index, count = parsed
    return list(items)[index::count]


def make_work_items(inputs: Iterable[InputLike]) -> List[WorkItem]:
    """Normalise inputs into work items, in input order.

    Accepts ``(name, smiles)`` pairs, objects with ``.name`` and ``.smiles``
    (catalog entries), :class:`WorkItem` and :class:`Geometry` objects
    (geometries of the same molecule are grouped into one item).

    Raises
    ------
    ConfigError
        On duplicate molecule names or unrecognised inputs.
    """
    items: Dict[str, WorkItem] = {}
    for entry in inputs:
        if isinstance(entry, WorkItem):
            item = entry
        elif isinstance(entry, Geometry):
            existing = items.get(entry.molecule)
            if existing is not None and existing.geometries is not None:
                existing.geometries.append(entry)
                continue
            item = WorkItem(entry.molecule, entry.smiles, [entry])
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(isinstance(v, str) for v in entry):
            item = WorkItem(entry[0], entry[1])
        elif hasattr(entry, "name") and hasattr(entry, "smiles"):
            item = WorkItem(str(entry.name), str(entry.smiles))
        else:
            raise ConfigError(f"cannot label {entry!r}: expected (name, smiles), a catalog entry or a Geometry")
        if not item.name or "/" in item.name:
            raise ConfigError(f"molecule name {item.name!r} must be non-empty and must not contain '/'")
        if item.name in items:
            raise ConfigError(f"molecule name {item.name!r} appears twice in the input; names must be unique")
        items[item.name] = item
    return list(items.values())


# -- the work of one item (runs in a worker or inline) -----------------------------------
def label_geometry(teacher, geometry: Geometry) -> LabelledStructure:
    """Label one geometry (reusing a label computed during sampling). Raises TeacherError."""
    if geometry.energy is not None and geometry.forces is not None:
        energy, forces = float(geometry.energy), np.asarray(geometry.forces, dtype=np.float64)
        provenance = {**geometry.provenance, "label": "md-step"}
    else:
        result = teacher.compute(geometry.atomic_numbers, geometry.positions, geometry.box, charge=geometry.charge)
        energy, forces = result.energy, result.forces
        provenance = dict(geometry.provenance)
    return LabelledStructure(
        key=geometry.key,
        molecule=geometry.molecule,
        atomic_numbers=np.asarray(geometry.atomic_numbers, dtype=np.int64),
        positions=np.asarray(geometry.positions, dtype=np.float64),
        energy=energy,
        forces=forces,
        box=geometry.box,
        charge=geometry.charge,
        smiles=geometry.smiles,
        provenance=provenance,
    )


def process_item(item: WorkItem, teacher, config: SamplingConfig) -> ItemResult:
    """Sample (unless geometries are given) and label one molecule; failures are collected, not raised."""
    start = time.perf_counter()
    result = ItemResult(item.name)
    if item.geometries is not None:
        geometries = item.geometries
    else:
        try:
            sampled = sample_molecule(item.name, item.smiles, config, teacher)
        except (ConfigError, TeacherError) as exc:
            result.failures.append(Failure(item.name, f"sampling failed: {exc}"))
            result.seconds = time.perf_counter() - start
            return result
        geometries = sampled.geometries
        result.failures.extend(sampled.failures)
    for geometry in geometries:
        try:
            result.structures.append(label_geometry(teacher, geometry))
        except TeacherError as exc:
            result.failures.append(Failure(geometry.key, str(exc)))
    result.seconds = time.perf_counter() - start
    return result


_WORKER: Dict[str, Any] = {}


def _init_worker(teacher_name: str, teacher_options: Dict[str, Any], config: Dict[str, Any]) -> None:
    for var in THREAD_VARIABLES:
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    from openmm_distill.teachers import get_teacher

    _WORKER["teacher"] = get_teacher(teacher_name, **teacher_options)
    _WORKER["config"] = SamplingConfig.from_dict(config)


def _work(item: WorkItem) -> ItemResult:
    return process_item(item, _WORKER["teacher"], _WORKER["config"])


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- the job ---------------------------------------------------------------------------------
def _check_resume(
    metadata: Dict[str, Any], teacher_info: Dict[str, Any], sampling_record: Dict[str, Any],
    extra: Dict[str, Any], path: str,
) -> None:
    mismatches = []
    stored_teacher = metadata.get("teacher", {})
    for key in ("name", "version", "settings"):
        a, b = stored_teacher.get(key), teacher_info.get(key)
        if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            mismatches.append(f"teacher {key}: file has {a!r}, this job has {b!r}")
    stored_config = metadata.get("sampling_config", {})
    if json.dumps(stored_config, sort_keys=True) != json.dumps(sampling_record, sort_keys=True):
        mismatches.append(f"sampling config: file has {stored_config}, this job has {sampling_record}")
    for key, value in extra.items():
        stored = metadata.get(f"meta_{key}")
        if json.dumps(stored, sort_keys=True) != json.dumps(value, sort_keys=True):
            mismatches.append(f"{key}: file has {stored}, this job has {value}")
    if mismatches:
        raise ConfigError(
            f"cannot resume {path}: it was started with different settings ("
            + "; ".join(mismatches)
            + "). Use the same settings, or start over with resume=False (--no-resume)."
        )


def label(
    inputs: Iterable[InputLike],
    output: str,
    *,
    sampling: Union[SamplingConfig, Dict[str, Any], None] = None,
    teacher: str = "gfn2-xtb",
    teacher_options: Optional[Dict[str, Any]] = None,
    n_workers: int = 1,
    shard: Union[None, str, Tuple[int, int]] = None,
    resume: bool = True,
    overwrite: bool = False,
    compression: str = "gzip",
    creation_command: Optional[str] = None,
    progress: bool = True,
    callback: Optional[Callable[[LabelProgress], None]] = None,
) -> LabelReport:
    """Sample geometries for molecules and label them with a teacher into an HDF5 dataset.

    Parameters
    ----------
    inputs : iterable
        ``(name, smiles)`` pairs, catalog entries (``.name``, ``.smiles``),
        :class:`~openmm_distill.data.records.Geometry` objects (labelled as
        given, no sampling) or :class:`WorkItem` objects. Names must be unique.
    output : str
        Final ``.h5`` path; the job writes ``<output>.partial`` and renames it when done.
    sampling : SamplingConfig or dict, optional
        Defaults to ``SamplingConfig()``.
    teacher : str
        Registry name (:func:`openmm_distill.teachers.available_teachers`).
    teacher_options : dict, optional
        Passed to :func:`openmm_distill.teachers.get_teacher`.
    n_workers : int
        Worker processes (1: run in this process).
    shard : str or (int, int), optional
        ``"i/n"``: label only molecules ``i, i+n, ...`` (0-based).
    resume : bool
        Continue an existing ``<output>.partial`` (default). False starts over.
    overwrite : bool
        Allow replacing an existing ``output``.
    compression : str
        ``"gzip"``, ``"lzf"`` or ``"none"``.
    creation_command : str, optional
        Recorded in the file; default: this process's command line.
    progress : bool
        Show a tqdm progress bar (stderr).
    callback : callable, optional
        Called with a :class:`LabelProgress` after every committed molecule.

    Returns
    -------
    LabelReport

    Raises
    ------
    ConfigError
        Bad arguments, an existing output without ``overwrite``, or a
        ``.partial`` file started with a different teacher or sampling config.
    """
    config = sampling if isinstance(sampling, SamplingConfig) else SamplingConfig.from_dict(sampling)
    return _run_job(
        make_work_items(inputs), output, config, config.to_dict(), {},
        teacher=teacher, teacher_options=teacher_options, n_workers=n_workers, shard=shard, resume=resume,
        overwrite=overwrite, compression=compression, creation_command=creation_command, progress=progress,
        callback=callback,
    )


def relabel(
    source: str,
    output: str,
    *,
    teacher: str = "gfn2-xtb",
    teacher_options: Optional[Dict[str, Any]] = None,
    n_workers: int = 1,
    shard: Union[None, str, Tuple[int, int]] = None,
    resume: bool = True,
    overwrite: bool = False,
    compression: str = "gzip",
    creation_command: Optional[str] = None,
    progress: bool = True,
    callback: Optional[Callable[[LabelProgress], None]] = None,
) -> LabelReport:
    """Label the geometries of an existing dataset with another teacher, without sampling again.

    The same job as :func:`label` (one work item per molecule, resumable,
    sharded, worker processes), whose inputs are the ``source`` file's
    structures: keys, molecule names and SMILES, charges, boxes and geometry
    provenance are kept, so molecule-based splits are unchanged. The output
    records the new teacher, the source's sampling config, and in the
    attribute ``meta_relabelled_from`` the source's file name, SHA-256 (of its
    bytes), teacher and structure count. Resuming checks that the source is unchanged.

    Parameters
    ----------
    source : str
        A published dataset (``.h5``). Its energies and forces are ignored.
    output : str
        As in :func:`label`; must differ from ``source``.
    teacher, teacher_options, n_workers, shard, resume, overwrite, compression, creation_command, progress, callback
        As in :func:`label`.

    Returns
    -------
    LabelReport

    Raises
    ------
    MissingFileError
        If ``source`` does not exist.
    ConfigError
        If ``output`` is ``source``, or as for :func:`label`.
    """
    source, output = os.fspath(source), os.fspath(output)
    if not os.path.isfile(source):
        raise MissingFileError(f"no dataset to relabel at {source}")
    if os.path.abspath(source) == os.path.abspath(output):
        raise ConfigError(f"the relabelled output must be a new file, not the source {source}")
    with open_dataset(source) as ds:
        origin = {
            "file": os.path.basename(source),
            "sha256": file_sha256(source),
            "teacher": ds.metadata["teacher"],
            "n_structures": len(ds),
        }
        sampling_record = ds.metadata.get("sampling_config", {})
        geometries = ds.geometries()
    return _run_job(
        make_work_items(geometries), output, SamplingConfig(), sampling_record,
        {"relabelled_from": origin},
        teacher=teacher, teacher_options=teacher_options, n_workers=n_workers, shard=shard, resume=resume,
        overwrite=overwrite, compression=compression, creation_command=creation_command, progress=progress,
        callback=callback,
    )


def _run_job(
    items: List[WorkItem],
    output: str,
    config: SamplingConfig,
    sampling_record: Dict[str, Any],
    extra_metadata: Dict[str, Any],
    *,
    teacher: str,
    teacher_options: Optional[Dict[str, Any]],
    n_workers: int,
    shard: Union[None, str, Tuple[int, int]],
    resume: bool,
    overwrite: bool,
    compression: str,
    creation_command: Optional[str],
    progress: bool,
    callback: Optional[Callable[[LabelProgress], None]],
) -> LabelReport:
    """The labelling loop behind :func:`label` and :func:`relabel`.

    ``config`` drives sampling (items without geometries); ``sampling_record``
    is what the file records as its sampling config, and with ``extra_metadata``
    (stored as ``meta_<key>``) what a resumed job must match.
    """
    from tqdm.auto import tqdm

    from openmm_distill.teachers import get_teacher

    start = time.perf_counter()
    teacher_options = dict(teacher_options or {})
    if int(n_workers) < 1:
        raise ConfigError(f"n_workers must be >= 1, got {n_workers!r}")
    output = os.fspath(output)
    if os.path.exists(output) and not overwrite:
        raise ConfigError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    items = shard_items(items, shard)
    teacher_obj = get_teacher(teacher, **teacher_options)
    teacher_info = teacher_obj.describe()
    metadata = {
        "teacher": teacher_info,
        "sampling_config": sampling_record,
        "creation_command": creation_command if creation_command is not None else " ".join(sys.argv),
        "shard": list(parse_shard(shard)) if parse_shard(shard) else None,
        **extra_metadata,
    }
    tmp = partial_path(output)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    if resume and os.path.exists(tmp):
        writer = DatasetWriter(tmp, append=True, compression=compression)
        try:
            _check_resume(writer.metadata, teacher_info, sampling_record, extra_metadata, tmp)
        except ConfigError:
            writer.abort()
            raise
    else:
        writer = DatasetWriter(tmp, metadata=metadata, compression=compression)

    report = LabelReport(output=tmp, n_items=len(items))
    try:
        done = writer.completed_items
        todo = [item for item in items if item.name not in done]
        report.n_items_skipped = len(items) - len(todo)
        bar = tqdm(total=len(items), initial=report.n_items_skipped, desc="labelling", unit="mol", disable=not progress)
        with contextlib.ExitStack() as stack:
            if n_workers > 1 and len(todo) > 1:
                ctx = multiprocessing.get_context("spawn")
                with _environment(**{v: "1" for v in THREAD_VARIABLES}):
                    pool = ctx.Pool(
                        processes=min(int(n_workers), len(todo)),
                        initializer=_init_worker,
                        initargs=(teacher, teacher_options, config.to_dict()),
                    )
                stack.callback(pool.join)
                stack.callback(pool.terminate)
                results: Iterable[ItemResult] = pool.imap(_work, todo, chunksize=1)
            else:
                results = (process_item(item, teacher_obj, config) for item in todo)
            items_done = report.n_items_skipped
            for result in results:
                new = [s for s in result.structures if not writer.has_key(s.key)]
                writer.append(new)
                writer.add_failures(result.failures)
                writer.mark_completed([result.name])
                writer.commit()
                report.n_structures_written += len(new)
                report.failures.extend(result.failures)
                items_done += 1
                bar.update(1)
                bar.set_postfix(structures=writer.n_structures, failed=len(writer.failed_keys))
                if callback is not None:
                    callback(
                        LabelProgress(
                            item=result.name,
                            items_done=items_done,
                            items_total=len(items),
                            structures_written=report.n_structures_written,
                            structures_total=writer.n_structures,
                            failures_total=len(writer.failed_keys),
                        )
                    )
        bar.close()
        report.n_failed = len(report.failures)
        report.n_structures_total = writer.n_structures
        report.n_failed_total = len(writer.failed_keys)
        writer.close(complete=True)
    except BaseException:
        # Keep the last commit only: the interrupted item may be half-written.
        writer.abort()
        raise
    publish(tmp, output)
    report.output = output
    report.published = True
    report.elapsed_s = time.perf_counter() - start
    return report
