"""Merge the outputs of one protocol run in parts (batches, array-job shards) into one folder.

A whole split is too long for one job on a small machine: NVE on the 64 test
molecules is about 3 core-hours here, 100 ps of NVT about 20. It runs in parts
(``--systems`` batches or ``--shard i/n``), each writing its own folder, so a
killed job loses one part only. :func:`merge_outputs` joins the parts'
``nve.json`` or ``stability.json`` into one JSON and one summary, after
checking that they measured the same student with the same settings. The
per-system files (PNG, CSV, DCD) stay where they are; the merged JSON names
the folders they came from.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

from openmm_distill.config_loader import from_dict
from openmm_distill.errors import ConfigError
from openmm_distill.protocols import output
from openmm_distill.protocols.output import ProtocolOutput

# Student fields that may differ between parts: where the same file was read from, and the label derived from it.
_LOCAL_MODEL_FIELDS = ("path", "name")


def _nve_summary(records: List[Dict[str, Any]], settings: Dict[str, Any], name: str,
                 output_dir: Path) -> Tuple[str, Dict[str, Any], List[Path]]:
    from openmm_distill.protocols.nve import NVESettings, plot_nve_sweep, summarize_nve

    parsed = from_dict(NVESettings, settings, "settings")
    verdict = {"all_passed": bool(records) and all(r["passed"] for r in records)}
    overview = plot_nve_sweep(output_dir / "nve_overview.png", records, parsed, name)
    return summarize_nve(records, parsed, name), verdict, [overview] if overview else []


def _stability_summary(records: List[Dict[str, Any]], settings: Dict[str, Any], name: str,
                       output_dir: Path) -> Tuple[str, Dict[str, Any], List[Path]]:
    from openmm_distill.protocols.stability import StabilitySettings
    from openmm_distill.protocols.stability_summary import plot_stability_sweep, summarize_stability

    # The settings as the parts wrote them to JSON (lists for tuples, a mapping for the thresholds).
    parsed = from_dict(StabilitySettings, settings, "settings")
    verdict = {"all_survived": bool(records) and all(r["survived_all"] for r in records)}
    overview = plot_stability_sweep(output_dir / "stability_overview.png", records, parsed, name)
    return summarize_stability(records, parsed, name), verdict, [overview] if overview else []


# Protocols whose results are per system, so that parts can be joined: summary, verdict, overview plot.
MERGEABLE: Dict[str, Callable[..., Tuple[str, Dict[str, Any], List[Path]]]] = {
    "nve": _nve_summary,
    "stability": _stability_summary,
}


def _read_part(folder: Path) -> Dict[str, Any]:
    found = [folder / f"{name}.json" for name in MERGEABLE if (folder / f"{name}.json").is_file()]
    kept = sorted((folder / "systems").glob("*.json"))
    if not found and kept:
        raise ConfigError(f"{folder}: its run did not finish ({len(kept)} finished system{'s' * (len(kept) != 1)} kept "
                          f"in {folder / 'systems'}); "
                          "run its command again, which simulates only the rest, then merge")
    if len(found) != 1:
        raise ConfigError(f"{folder}: expected one of {', '.join(f'{n}.json' for n in MERGEABLE)} "
                          f"(the output folder of an NVE or stability run), found {len(found) or 'none'}")
    try:
        with open(found[0]) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{found[0]} is not readable JSON ({err}); rerun that part") from err
    missing = [k for k in ("protocol", "model", "settings", "systems") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ConfigError(f"{found[0]} lacks {', '.join(missing)}: not written by an openmm-distill protocol")
    return data


def _differences(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def merge_outputs(folders: Sequence[Union[str, Path]], output_dir: Union[str, Path]) -> ProtocolOutput:
    """Join the per-system results of several runs of one protocol (NVE or stability) into ``output_dir``.

    Raises
    ------
    ConfigError
        When fewer than two folders are given, a folder holds no NVE or stability
        result, the parts come from different protocols, students or settings,
        or a system appears in two parts.
    """
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise ConfigError(f"merge needs at least two output folders, got {len(folders)}")
    if any(f.resolve() == Path(output_dir).resolve() for f in folders):
        raise ConfigError(f"the output folder {output_dir} is one of the parts; merge into a new folder")
    parts = [_read_part(f) for f in folders]
    first, first_folder = parts[0], folders[0]
    protocol = first["protocol"]
    for folder, part in zip(folders[1:], parts[1:]):
        if part["protocol"] != protocol:
            raise ConfigError(f"{folder} holds {part['protocol']} results, {first_folder} {protocol} results; "
                              "merge parts of one protocol")
        model_diff = _differences({k: v for k, v in first["model"].items() if k not in _LOCAL_MODEL_FIELDS},
                                  {k: v for k, v in part["model"].items() if k not in _LOCAL_MODEL_FIELDS})
        if model_diff:
            raise ConfigError(f"{folder} and {first_folder} measured different students (they differ in "
                              f"{', '.join(model_diff)})")
        settings_diff = _differences(first["settings"], part["settings"])
        if settings_diff:
            raise ConfigError(f"{folder} and {first_folder} ran with different settings: {', '.join(settings_diff)}")
    records = [record for part in parts for record in part["systems"]]
    names = [r["system"]["name"] for r in records]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"systems measured in more than one part: {', '.join(repeated)}")
    label = first["model"].get("name") or Path(str(first["model"].get("path"))).stem
    summary, verdict, plots = MERGEABLE[protocol](records, first["settings"], label, Path(output_dir))
    summary += (f"\n\nMerged from {len(folders)} runs ({len(records)} systems); their per-system files stay in: "
                + ", ".join(f"`{f}`" for f in folders) + ".")
    payload = {"protocol": protocol, "model": first["model"], "settings": first["settings"],
               "environments": [part.get("environment") for part in parts], **verdict,
               "merged_from": [str(f) for f in folders], "systems": records}
    return output.finish(protocol, Path(output_dir), payload, summary, plots)
