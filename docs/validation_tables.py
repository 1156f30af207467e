"""Fill the NVE and 500 K tables of docs/validation.md and the `original` model card from merged protocol results.

The numbers come from `openmm-distill protocol merge` output (one JSON per protocol); this
script only turns them into the Markdown between the `<!-- nve-start/end -->` and
`<!-- stab500-start/end -->` markers.

    python docs/validation_tables.py \
        --nve runs/protocols/original_v5/nve_test/nve.json \
        --stability runs/protocols/original_v5/stability_500K_test/stability.json \
        --write
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [ROOT / "docs" / "validation.md", ROOT / "openmm_distill" / "students" / "original.md"]


def backend_of(record) -> str:
    """The backend that computed a system (records written before session 7 name none: they used torch)."""
    return (record.get("platform") or {}).get("backend", "torch")


def backends_used(records) -> str:
    """'`torch` for 30, `inductor` for 12'."""
    counts = Counter(backend_of(r) for r in records)
    return ", ".join(f"`{b}` for {n}" for b, n in counts.most_common())


def nve_block(data) -> str:
    rows = [(r["system"]["name"], r["system"]["n_atoms"], r["analysis"]["drift_mev_per_atom_per_ps"],
             r["analysis"]["mean_temperature_k"], r["passed"]) for r in data["systems"]]
    n, n_pass = len(rows), sum(r[4] for r in rows)
    worst = max(rows, key=lambda r: abs(r[2]))
    temps = [r[3] for r in rows]
    text = (f"NVE, 10 ps of velocity Verlet at 0.5 fs after 1 ps of Langevin at 300 K, one thread per run, two runs "
            f"at once (`openmm-distill protocol nve --student original --systems <8 test molecules> --length-ps 10 "
            f"--equilibration-ps 1 --threads 1 --jobs 2`, 8 batches of 8 in catalog order, joined by `openmm-distill "
            f"protocol merge`; backend {backends_used(data['systems'])}): **{n_pass}/{n} of the {n} test molecules "
            f"pass** |drift| <= 0.1 meV/atom/ps; the largest |drift| is {abs(worst[2]):.4f} meV/atom/ps ({worst[0]}). "
            f"<T> is the mean temperature of the NVE part (median {statistics.median(temps):.0f} K, "
            f"{sum(t < 300 for t in temps)} of {n} below 300 K: 1 ps of Langevin at friction 1/ps does not fully "
            f"thermalise a molecule that starts at its embedded geometry).\n\n"
            "| molecule | atoms | drift (meV/atom/ps) | <T> (K) | result |\n|---|---|---|---|---|\n")
    return text + "\n".join(f"| {r[0]} | {r[1]} | {r[2]:+.4f} | {r[3]:.0f} | {'PASS' if r[4] else 'FAIL'} |"
                            for r in rows)


def stability_block(data, test_molecules: int) -> str:
    rows = []
    for r in data["systems"]:
        for run in r["runs"]:
            a = run["analysis"] or {}
            rows.append((r["system"]["name"], r["system"]["n_atoms"], run["survived"], run["time_to_failure_ps"],
                         a.get("rmsd_max_angstrom"), a.get("bond_length_max_deviation_angstrom"),
                         "; ".join(run["failure_reasons"]), backend_of(r)))
    rows.sort(key=lambda r: (r[1], r[0]))
    n, n_surv = len(rows), sum(r[2] for r in rows)
    missing = test_molecules - len({r[0] for r in rows})
    text = (f"NVT at 500 K, 1 fs, 100 ps under the stability watchdog (`openmm-distill protocol stability --student "
            f"original --systems <molecules> --temperatures 500 --length-ps 100 --timestep-fs 1.0 --threads 1`, "
            f"smallest molecules first, joined by `openmm-distill protocol merge`; backend "
            f"{backends_used(data['systems'])}): **{n_surv} of {n} survived**")
    changes = [r for r in rows if r[5] is not None]
    if changes:
        worst = max(changes, key=lambda r: r[5])
        limit = data["settings"]["thresholds"]["max_bond_deviation_angstrom"]
        text += f"; the largest bond change is {worst[5]:.3f} Å ({worst[0]}), against the watchdog's {limit:g} Å"
    text += (f"; the other {missing} test molecules were not run (about 10-30 core-minutes each here).\n\n" if missing > 0
             else ".\n\n")
    text += "| molecule | atoms | result | max RMSD (Å) | max bond change (Å) | backend |\n|---|---|---|---|---|---|\n"
    return text + "\n".join(
        f"| {r[0]} | {r[1]} | {'survived 100 ps' if r[2] else '**FAILED** at %.2f ps: %s' % (r[3], r[6])} | "
        f"{'—' if r[4] is None else '%.2f' % r[4]} | {'—' if r[5] is None else '%.3f' % r[5]} | {r[7]} |" for r in rows)


def replace_block(text: str, tag: str, body: str, path: Path) -> str:
    start, end = f"<!-- {tag}-start -->", f"<!-- {tag}-end -->"
    a, b = text.find(start), text.find(end)
    if a < 0 or b < a:
        raise SystemExit(f"{path} has no {start} ... {end} block")
    return text[:a] + start + "\n" + body + "\n" + text[b:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nve", type=Path, help="merged nve.json")
    parser.add_argument("--stability", type=Path, help="merged stability.json (500 K)")
    parser.add_argument("--test-molecules", type=int, default=None,
                        help="how many molecules the sweep should cover (default: the catalog's test split)")
    parser.add_argument("--write", action="store_true", help="write the blocks into docs/validation.md and the model card "
                                                              "(default: print them)")
    args = parser.parse_args(argv)
    for given in (args.nve, args.stability):
        if given is not None and not given.is_file():
            parser.error(f"{given} does not exist (the JSON that `openmm-distill protocol merge` writes)")
    blocks = {}
    if args.nve:
        blocks["nve"] = nve_block(json.loads(args.nve.read_text()))
    if args.stability:
        if args.test_molecules is None:
            from openmm_distill.systems.catalog import molecules

            args.test_molecules = len(molecules("test"))
        blocks["stab500"] = stability_block(json.loads(args.stability.read_text()), args.test_molecules)
    if not blocks:
        parser.error("give --nve and/or --stability")
    for tag, body in blocks.items():
        print(f"<!-- {tag} -->\n{body}\n")
    if args.write:
        for path in TARGETS:
            text = path.read_text()
            for tag, body in blocks.items():
                text = replace_block(text, tag, body, path)
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
