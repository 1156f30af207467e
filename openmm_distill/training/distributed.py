"""Data-parallel multi-process training (``torchrun`` + PyTorch DDP): the plumbing.

Launch::

    torchrun --nproc_per_node=4 -m openmm_distill.cli train original --set ...

``torchrun`` starts one process per GPU (or per CPU worker) and sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. When ``WORLD_SIZE > 1`` the
trainer calls :func:`init` (``nccl`` when the training device is CUDA, else
``gloo``), wraps the student in ``DistributedDataParallel`` and gives every
process a disjoint share of each epoch's batches (:func:`shard_loader`).
Everything here is a no-op in a single process (plain ``openmm-distill
train``, or ``torchrun --nproc_per_node=1``), so single-process runs are
unchanged.

What the trainer does with it (see :mod:`openmm_distill.training.trainer`):

- every rank builds the same split, student and optimiser from the same
  seed; DDP averages the gradients, so the weights stay identical;
- training: each epoch's shuffled batch order is the same on all ranks
  (seeded by ``(seed, epoch)``); rank ``r`` takes batches ``r, r + W, ...``
  of it after dropping the ragged tail (``n_batches mod W`` batches, which
  differ from epoch to epoch), so every rank does the same number of steps;
- the effective batch is ``data.batch_size x WORLD_SIZE`` structures per
  optimiser step; the learning rate is NOT rescaled automatically;
- validation and test evaluation are sharded the same way (without dropping)
  and the metric sums are added over ranks (:func:`all_reduce_accumulator`),
  so every rank gets the numbers one process would (up to float summation
  order) and takes the same early-stopping and schedule decisions;
- only rank 0 (:func:`is_main`) writes files and shows progress bars.
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict, Iterator, List, Mapping, Optional

import torch
import torch.distributed as dist

from openmm_distill.errors import MissingDependencyError

# Whether init() created the process group (cleanup() leaves one it did not create alone).
_OWN_GROUP = False


# --------------------------------------------------------------------- launch
def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        return default


def launched() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process (``WORLD_SIZE > 1``)."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank (0 in a single process); read from ``RANK`` before :func:`init`."""
    if is_distributed():
        return dist.get_rank()
    return _env_int("RANK", 0) if launched() else 0


def local_rank() -> int:
    """Rank on this machine (``LOCAL_RANK``; 0 in a single process)."""
    return _env_int("LOCAL_RANK", 0) if launched() else 0


def world_size() -> int:
    """Number of processes (1 in a single process)."""
    if is_distributed():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1) if launched() else 1


def is_main() -> bool:
    """Rank 0 (the process that writes files and prints); always True in a single process."""
    return rank() == 0


def device_for(name: str) -> Optional[torch.device]:
    """The device of this process under ``torchrun``, or None in a single process (use ``run.device``).

    ``auto`` and ``cuda`` become ``cuda:LOCAL_RANK`` when CUDA is available
    (``auto`` falls back to the CPU); ``cpu`` stays the CPU. A fixed
    ``cuda:N`` would put every process on one GPU, so it is refused.
    """
    if not launched():
        return None
    from openmm_distill.errors import ConfigError

    if name.startswith("cuda:"):
        raise ConfigError(f"run.device = {name!r} under torchrun: every process would use the same GPU; use "
                          "auto or cuda (process LOCAL_RANK then takes cuda:LOCAL_RANK)")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        n = torch.cuda.device_count()
        if local_rank() >= n:
            raise ConfigError(f"LOCAL_RANK {local_rank()} but only {n} CUDA devices are visible; start at most "
                              f"{n} processes per machine (torchrun --nproc_per_node)")
        return torch.device("cuda", local_rank())
    if name == "cuda":
        raise ConfigError("run.device = 'cuda' but CUDA is not available here; use auto or cpu")
    return torch.device("cpu")


def init(device: torch.device) -> bool:
    """Join the ``torchrun`` process group (idempotent); False (and nothing done) in a single process.

    The backend is ``nccl`` when this process trains on a CUDA device, else
    ``gloo`` (CPU tensors). Rendezvous comes from torchrun's environment
    (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``).
    """
    if not launched():
        return False
    if not dist.is_available():  # pragma: no cover (every standard build has it)
        raise MissingDependencyError("torch.distributed is not available in this PyTorch build")
    global _OWN_GROUP
    if dist.is_initialized():  # the caller's own group (e.g. a script that set it up itself)
        return dist.get_world_size() > 1
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    _OWN_GROUP = True
    return True


def _uses_nccl() -> bool:
    return is_distributed() and dist.get_backend() == "nccl"


def _comm_device() -> torch.device:
    """Where collective tensors must live: this rank's GPU for NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if _uses_nccl() else torch.device("cpu")


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if not is_distributed():
        return
    if _uses_nccl():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group that :func:`init` created (no-op otherwise, e.g. in a single process)."""
    global _OWN_GROUP
    if _OWN_GROUP and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _OWN_GROUP = False


# ----------------------------------------------------------------- reductions
def _all_reduce(values, average: bool):
    """Sum (or mean) over ranks of a tensor, a number or a dict of numbers; same type back."""
    if not is_distributed():
        return values
    n = world_size()
    if isinstance(values, torch.Tensor):
        t = values.detach().to(_comm_device(), copy=True)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        if average:
            t = t / n
        return t.to(values.device)
    if isinstance(values, Mapping):
        keys = sorted(values)  # same order on every rank
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        if average:
            t = t / n
        return {k: float(v) for k, v in zip(keys, t.tolist())}
    t = torch.tensor([float(values)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / (n if average else 1)


def all_reduce_sum(values):
    """Sum over ranks of a tensor, a number or a ``{name: number}`` dict (identity in a single process)."""
    return _all_reduce(values, average=False)


_ACCUMULATOR_SUMS = ("n_structures", "n_atoms", "n_components", "n_angles", "sum_abs_e_per_atom", "sum_abs_f",
                     "sum_sq_f", "sum_t", "sum_t2", "sum_angle", "_loss_count")


def all_reduce_accumulator(acc):
    """Add a :class:`~openmm_distill.metrics.MetricAccumulator`'s running sums over ranks (in place).

    Every metric is a ratio of sums, so the result equals one process
    accumulating every rank's batches (up to float summation order); the
    mean batch losses become the mean over all ranks' batches. Returns ``acc``.
    """
    if not is_distributed():
        return acc
    # The loss names a rank has seen depend on its batches (none on a rank without validation batches;
    # "hessian" only where a row was sampled): reduce over the union, 0 where a rank has none.
    names = sorted({k for keys in gather_strings("\n".join(sorted(acc._loss_sums))) for k in keys.split("\n") if k})
    values = {name: float(getattr(acc, name)) for name in _ACCUMULATOR_SUMS}
    values.update({f"loss:{k}": float(acc._loss_sums.get(k, 0.0)) for k in names})
    total = all_reduce_sum(values)
    for name in _ACCUMULATOR_SUMS:
        value = total[name]
        setattr(acc, name, int(round(value)) if isinstance(getattr(acc, name), int) else value)
    acc._loss_sums = {k[5:]: v for k, v in total.items() if k.startswith("loss:")}
    return acc


# -------------------------------------------------------------------- sharding
class ShardedBatchSampler(torch.utils.data.Sampler):
    """This rank's share of another batch sampler's batches: batches ``rank, rank + W, ...``.

    Parameters
    ----------
    batch_sampler : iterable of lists of int
        The full batch order (for training the DataLoader's shuffled one,
        whose generator the trainer reseeds per epoch: the same order on every rank).
    rank, world_size : int
    drop_ragged : bool
        Drop the last ``len(batch_sampler) % world_size`` batches so every rank
        gets the same number (training: DDP needs equal step counts). Without
        it (evaluation) the ranks together cover every batch exactly once.
    """

    def __init__(self, batch_sampler, rank: int, world_size: int, drop_ragged: bool):
        self.batch_sampler = batch_sampler
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_ragged = bool(drop_ragged)

    def __len__(self) -> int:
        n = len(self.batch_sampler)
        if self.drop_ragged:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __iter__(self) -> Iterator[List[int]]:
        n_used = len(self.batch_sampler)
        if self.drop_ragged:
            n_used -= n_used % self.world_size
        for k, batch in enumerate(self.batch_sampler):
            if k >= n_used:
                break
            if k % self.world_size == self.rank:
                yield batch


def shard_loader(loader, *, drop_ragged: bool):
    """A DataLoader over this rank's batches of ``loader`` (``loader`` itself in a single process).

    The new loader shares ``loader``'s dataset, collate function, workers
    settings and generator, so :func:`openmm_distill.training.datasets.reseed`
    on either fixes the epoch's order on every rank alike.
    """
    if not is_distributed():
        return loader
    return torch.utils.data.DataLoader(
        loader.dataset,
        batch_sampler=ShardedBatchSampler(loader.batch_sampler, rank(), world_size(), drop_ragged),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        generator=loader.generator,
        worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers,
    )


# ----------------------------------------------------------------- consistency
def parameter_checksum(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters (names, dtypes and bytes, CPU): equal iff bitwise equal."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def gather_strings(text: str) -> List[str]:
    """Every rank's ``text``, in rank order (``[text]`` in a single process)."""
    if not is_distributed():
        return [text]
    out: List[Optional[str]] = [None] * world_size()
    dist.all_gather_object(out, text)
    return [str(s) for s in out]


def check_parameters_in_sync(model: torch.nn.Module) -> Dict[int, str]:
    """Checksums of every rank's parameters; raises if they differ (they must: DDP averages gradients).

    Returns ``{rank: checksum}`` (one entry in a single process).
    """
    sums = gather_strings(parameter_checksum(model))
    if len(set(sums)) > 1:
        from openmm_distill.errors import DistillError

        raise DistillError(f"data-parallel ranks ended with different weights (checksums {sums}); please report")
    return dict(enumerate(sums))


def ensure_all_parameters_used(loss: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """``loss + 0 * sum(parameters)``: every parameter gets a (zero) gradient in every step.

    DDP with ``find_unused_parameters=False`` waits for a gradient of every
    parameter and fails on a parameter that a step's loss does not reach.
    Today every parameter of the student reaches the loss through the energy
    term (terms with weight 0 stay in the graph, see
    :func:`openmm_distill.training.losses.distillation_loss`; a run with
    ``loss.energy_weight: 0`` was checked without this guard), so this is a
    safeguard: if that term were ever skipped, the readout bias, which forces
    do not depend on, would get no gradient. The added term changes neither
    the loss nor any existing gradient; it only turns "no gradient" into a
    zero gradient.
    """
    extra = sum(p.sum() for p in model.parameters() if p.requires_grad)
    return loss + 0.0 * extra
