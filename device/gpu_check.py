"""The CUDA check of issue #19: one command on a lent GPU, results as JSON.

Parts, in order, each in its own try/except (one failure does not lose the rest), the JSON
rewritten after each part and after each row inside one (a timeout keeps what finished):

  environment     versions, the GPU, OpenMM's platforms and plugin failures, whether openmm-torch loads
  platform_tests  the suite's platform tests (pytest -m platform) on the checked platform
  agreement       energies and forces on the checked platform against the CPU platform (mixed, single)
  training        one epoch of `original`: structures per second on the GPU and on the CPU
  md_speed        MD steps/s of each student, size and backend variant (with and without CUDA graphs)
  graph_capture   does one force call of the TorchScript student capture as a CUDA graph?

    python device/gpu_check.py --out $OUT                       # on the GPU machine (about 7 minutes)
    python device/gpu_check.py --quick --out /tmp/check         # on a CPU: the CPU platform stands in

device/README.md describes every field of the JSON and the targets.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import gpu_environment

RESULTS_FILE = "gpu_check.json"
PARTS = ("environment", "platform_tests", "agreement", "training", "md_speed", "graph_capture")
BACKENDS = ("torch", "python", "inductor")
FULL = {"platform": "CUDA", "sizes": "21,102,999,5001", "students": "original,tiny", "backends": ",".join(BACKENDS),
        "steps": "full", "train_structures": 256, "tests_select": None}
# --quick: the machinery end to end on a CPU in about a minute (TorchInductor's CPU compile alone takes 1-2 min).
QUICK = {**FULL, "platform": "CPU", "sizes": "21,102", "backends": "torch,python", "steps": "small",
         "train_structures": 16, "tests_select": "platforms_agree and python"}
# Seconds a part may use at most; md_speed takes what is left but GRAPH_CAPTURE_RESERVE_S.
PART_CAPS_S = {"platform_tests": 150.0, "agreement": 120.0, "training": 90.0, "graph_capture": 30.0}
GRAPH_CAPTURE_RESERVE_S = 30.0
TARGETS_STEPS_PER_S = {("original", 21): 2000.0, ("original", 5001): 100.0}


class Skipped(Exception):
    """A part that does not apply here (its message says why)."""


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Results:
    """The JSON results file, rewritten whole (temporary file + rename) after every change."""

    def __init__(self, path: Path, arguments: Dict[str, Any]):
        self.path = path
        self.start = time.perf_counter()
        self.data: Dict[str, Any] = {"check": "openmm-distill GPU check (device/gpu_check.py, issue #19)",
                                     "format_version": 1, "started_utc": utc_now(), "finished_utc": None,
                                     "arguments": arguments, "parts": {}, "targets": {}}
        self.save()

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.start, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


class PartLog:
    """What a running part has so far: ``result`` is saved (as the part's result) on every ``save()``."""

    def __init__(self, results: Results, name: str):
        self.results, self.name = results, name
        self.result: Dict[str, Any] = {}
        self.entry = results.data["parts"].setdefault(name, {})
        self.entry.update(status="running", result=self.result)
        self.t0 = time.perf_counter()
        results.save()

    def save(self) -> None:
        self.entry["seconds"] = round(time.perf_counter() - self.t0, 1)
        self.results.save()


def run_part(results: Results, name: str, fn: Callable[[PartLog], Any]) -> None:
    """Run one part; its status becomes ok, skipped (with the reason) or error (with the message)."""
    print(f"[gpu_check] {name} ...", flush=True)
    log = PartLog(results, name)
    try:
        value = fn(log)
        if value is not None and value is not log.result:
            log.result.update(value)
        log.entry["status"] = "ok"
    except Skipped as exc:
        log.entry.update(status="skipped", reason=str(exc))
    except Exception as exc:  # the point of parts: record and go on
        log.entry.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000],
                         traceback=traceback.format_exc()[-3000:])
    results.data["targets"] = evaluate_targets(results.data["parts"])
    log.save()
    print(f"[gpu_check] {name}: {log.entry['status']} ({log.entry['seconds']} s)", flush=True)


class Budget:
    """Seconds left of the whole check, and of one part under its own cap."""

    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def for_part(self, cap_s: Optional[float], reserve_s: float = 0.0) -> Callable[[], float]:
        part_deadline = time.perf_counter() + cap_s if cap_s else float("inf")
        return lambda: min(self.left() - reserve_s, part_deadline - time.perf_counter())


# ----------------------------------------------------------------------------- arguments
def parse_list(parser: argparse.ArgumentParser, option: str, text: str, allowed) -> List[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if not items or bad:
        parser.error(f"{option} {text!r}: choose from {','.join(allowed)}")
    return items


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_check.json (default: $OUT)")
    parser.add_argument("--quick", action="store_true",
                        help=f"defaults for a CPU smoke run: {', '.join(f'{k}={v}' for k, v in QUICK.items())}")
    parser.add_argument("--platform", help="OpenMM platform checked (default CUDA; CPU stands in on a CPU machine)")
    parser.add_argument("--sizes", help="atoms per system, from 21,102,999,5001 (default all)")
    parser.add_argument("--students", help="shipped students (default original,tiny)")
    parser.add_argument("--backends", help="from torch,python,inductor (default all)")
    parser.add_argument("--steps", choices=("small", "full"), help="MD timing windows (default full)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"parts to run, from {','.join(PARTS)} "
                        "(environment always runs)")
    parser.add_argument("--train-structures", type=int, help="structures in the training dataset (default 256)")
    parser.add_argument("--tests-select", help="pytest -k expression narrowing the platform tests (default none)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="seconds the check may take; parts and MD configurations that would start later "
                             "are recorded as skipped (default 420)")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("--out is required where $OUT is not set")
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.parts = parse_list(parser, "--parts", args.parts, PARTS)
    args.backends = parse_list(parser, "--backends", args.backends, BACKENDS)
    args.students = parse_list(parser, "--students", args.students, ("original", "tiny", "ultra-tiny"))
    sizes = parse_list(parser, "--sizes", args.sizes, ("21", "102", "999", "5001"))
    args.sizes = [int(s) for s in sizes]
    if args.train_structures < 4:
        parser.error(f"--train-structures {args.train_structures}: at least 4 (some go to validation)")
    if args.budget_s <= 0:
        parser.error(f"--budget-s {args.budget_s}: must be > 0 seconds")
    return args


# ----------------------------------------------------------------------------- parts
def check_environment(log: PartLog, args: argparse.Namespace) -> None:
    """Versions and the GPU first (torch only), then the openmm-torch probe, then OpenMM's platforms."""
    log.result["gpu"] = gpu_environment.gpu_facts()
    if args.platform == "CUDA":
        log.result["preloaded_cuda_libraries"] = gpu_environment.preload_cuda_libraries()
    log.save()
    log.result["torch_force_probe"] = gpu_environment.probe_torch_force(args.platform)
    log.save()
    log.result["openmm"] = gpu_environment.openmm_facts()  # this process imports openmm here
    log.result["package"] = gpu_environment.package_facts()
    names = [p["name"] for p in log.result["openmm"]["platforms"]]
    log.result["platform_available"] = args.platform in names


def backend_plan(args: argparse.Namespace, environment: Dict[str, Any]) -> Tuple[List[Tuple[str, bool]], Dict[str, str]]:
    """Backend variants to run (graphs only on CUDA) and the backends that cannot run here, with why."""
    graphs = (False, True) if args.platform == "CUDA" else (False,)
    variants = [(b, g) for b in args.backends for g in graphs if not (b == "python" and g)]
    unusable: Dict[str, str] = {}
    if "torch" in args.backends:
        reason = gpu_environment.torch_backend_usable(environment.get("torch_force_probe", {}), args.platform)
        if reason:
            unusable["torch"] = reason
    return variants, unusable


def require_platform(environment: Dict[str, Any], platform_name: str) -> None:
    if not environment.get("platform_available", False):
        raise Skipped(f"OpenMM platform {platform_name} is not available (see environment.result.openmm."
                      "plugin_load_failures)")


def part_functions(args: argparse.Namespace, results: Results, budget: Budget) -> Dict[str, Callable[[PartLog], Any]]:
    """The parts after ``environment``. Imported only now: these modules import openmm, which must come
    after the CUDA library preload of the environment part."""
    import gpu_agreement
    import gpu_md
    import gpu_systems
    import gpu_tests
    import gpu_training

    environment = results.data["parts"]["environment"].get("result", {})
    variants, unusable = backend_plan(args, environment)
    usable = [(b, g) for b, g in variants if b not in unusable]
    gpu_systems.allow_recompiles()
    steps = gpu_md.STEPS[args.steps]
    on_gpu = args.platform == "CUDA"

    def platform_tests(log: PartLog):
        return gpu_tests.run_platform_tests(args.platform, max(10.0, budget.for_part(PART_CAPS_S["platform_tests"])()),
                                            args.tests_select)

    def agreement(log: PartLog):
        require_platform(environment, args.platform)
        return gpu_agreement.run_agreement(log, args.students, args.sizes, usable, args.platform,
                                           budget.for_part(PART_CAPS_S["agreement"]))

    def training(log: PartLog):
        if budget.for_part(PART_CAPS_S["training"])() < 30:
            raise Skipped("the check's time budget ran out")
        return gpu_training.run_training(log, args.train_structures, ["cuda", "cpu"] if on_gpu else ["cpu"])

    def md_speed(log: PartLog):
        require_platform(environment, args.platform)
        log.result["unusable_backends"] = unusable
        reserve = GRAPH_CAPTURE_RESERVE_S if "graph_capture" in args.parts else 0.0
        return gpu_md.run_md_speed(log, args.students, args.sizes, variants, unusable, args.platform, steps,
                                   budget.for_part(None, reserve), first=list(TARGETS_STEPS_PER_S))

    def graph_capture(log: PartLog):
        if not on_gpu:
            raise Skipped(f"CUDA graphs need the CUDA platform; this run checks {args.platform}")
        return gpu_md.run_graph_capture(log, args.students, args.sizes, steps.min_time_s,
                                        budget.for_part(PART_CAPS_S["graph_capture"]))

    return {"platform_tests": platform_tests, "agreement": agreement, "training": training, "md_speed": md_speed,
            "graph_capture": graph_capture}


# ----------------------------------------------------------------------------- targets
def evaluate_targets(parts: Dict[str, Any]) -> Dict[str, Any]:
    """The issue's targets, read off the results: value, target and whether it was met (None: not measured)."""
    targets: Dict[str, Any] = {}
    best = parts.get("md_speed", {}).get("result", {}).get("best", {})
    for (student, atoms), needed in TARGETS_STEPS_PER_S.items():
        found = best.get(f"{student} @ {atoms} atoms")
        value = found["steps_per_s"] if found else None
        targets[f"{student}_{atoms}_atoms_steps_per_s"] = {
            "target": f">= {needed:g} MD steps/s", "value": value, "variant": found and found["variant"],
            "met": None if value is None else value >= needed}
    agreement = parts.get("agreement", {}).get("result", {})
    targets["agrees_with_cpu_platform"] = {
        "target": "every backend and precision within float32 tolerance of the CPU platform",
        "value": agreement.get("compared"), "met": agreement.get("all_within_float32_tolerance") if agreement.get(
            "compared") else None}
    return targets


def main(argv=None) -> int:
    args = parse_args(argv)
    gpu_environment.use_working_tree()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out / RESULTS_FILE, dict(vars(args)))
    budget = Budget(args.budget_s)
    run_part(results, "environment", lambda log: check_environment(log, args))
    try:
        functions = part_functions(args, results, budget)
    except Exception as exc:  # e.g. openmm does not import: every later part says so
        error = f"the check's modules did not import: {type(exc).__name__}: {exc}"

        def failed(log: PartLog):
            raise RuntimeError(error)

        functions = dict.fromkeys(PARTS[1:], failed)
    for name in PARTS[1:]:
        if name in args.parts:
            run_part(results, name, functions[name])
    results.data["finished_utc"] = utc_now()
    results.save()
    print(f"[gpu_check] wrote {results.path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
