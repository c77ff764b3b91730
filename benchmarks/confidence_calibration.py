"""Coverage and cost of the bootstrap confidence per region, calibrated on held-out forward models.

Run: ``.venv/bin/python benchmarks/confidence_calibration.py [--solvers default sloreta] [--n 40] [--out calib/]
[--update-package]``

Writes (or reuses) the held-out-forward test sets of
``brainforge.evaluation.heldout`` (cap shifted 15 and 25 mm, skull 0.01 S/m,
sphere; 64 channels, 1-2 patches, 15 % deep, 5-20 dB) with seed 3030, so they
are not the comparison's sets. For each solver fitted on the template head,
``brainforge.evaluation.calibration.calibrate_confidence`` runs the
noise-resampling bootstrap (30 replicates) on every sample, calibrates the
margin of the 90 % set on the even samples and measures on the odd ones:

- coverage of the bare set (the replicate peaks alone) and of the calibrated
  set, with a 95 % Wilson interval (goal: 0.9);
- set sizes (regions), overall and at 5-10 vs 15-20 dB;
- milliseconds per 1-s segment for all replicates, and the ratio to one solve.

``--update-package`` writes the margins of the solvers run into
``src/brainforge/data/confidence_calibration.json`` (other solvers' entries are kept),
which ``brainforge localize --uncertainty`` reads. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np

PACKAGE_FILE = Path(__file__).resolve().parents[1] / "src" / "brainforge" / "data" / "confidence_calibration.json"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def merged_package_record(path: Path, record: dict) -> dict:
    """Return the package file's content with ``record``'s solvers replaced and the others kept.

    Each solver's entry carries its own provenance (command, commit, test sets,
    samples per set, seed), so calibrations made in different runs can sit
    side by side.
    """
    merged: dict = {"solvers": {}}
    if path.is_file():
        old = json.loads(path.read_text())
        old_provenance = {key: value for key, value in old.items() if key != "solvers"}
        for name, entry in old.get("solvers", {}).items():
            merged["solvers"][name] = {**old_provenance, **entry}
    provenance = {key: value for key, value in record.items() if key != "solvers"}
    for name, entry in record["solvers"].items():
        merged["solvers"][name] = {**entry, **provenance}
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solvers", nargs="+", default=["default", "sloreta"])
    parser.add_argument("--n", type=int, default=40, help="samples per held-out forward model")
    parser.add_argument("--resamples", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("confidence-calibration"))
    parser.add_argument("--update-package", action="store_true")
    args = parser.parse_args()

    from brainforge import set_log_level

    set_log_level("warning")  # keep MNE's progress messages out of the printed results

    from brainforge.anatomy import make_head_model
    from brainforge.evaluation.calibration import calibrate_confidence
    from brainforge.evaluation.heldout import write_heldout_test_sets
    from brainforge.inverse import make_solver
    from brainforge.inverse.uncertainty import UncertaintyConfig
    from brainforge.synthesis.store import read_test_set

    tests = write_heldout_test_sets(args.out / "test_sets", args.n, seed=3030)
    head = make_head_model("1010-64")
    config = UncertaintyConfig(n_resamples=args.resamples)
    results = {}
    rows = []
    for name in args.solvers:
        solver = make_solver(name).fit(head)
        eeg = np.asarray(read_test_set(tests[0]).eeg[0], float).T
        eeg = eeg - eeg.mean(axis=0)
        solver.apply_regions(eeg, 500.0)  # warm-up
        start = time.perf_counter()
        for _ in range(5):
            solver.apply_regions(eeg, 500.0)
        one_solve_ms = (time.perf_counter() - start) / 5 * 1e3
        result = calibrate_confidence(solver, head, tests, config, label=name)
        result.samples.to_csv(args.out / f"{name}_samples.csv", index=False)
        evaluation = result.samples[result.samples.half == "evaluation"]
        low = evaluation[evaluation.sensor_snr_db < 10]
        high = evaluation[evaluation.sensor_snr_db >= 15]
        summary = result.to_dict()
        summary.update(
            {
                "set_size_bare_mean": round(float(evaluation.set_size_bare.mean()), 2),
                "set_size_mean": round(float(evaluation.set_size.mean()), 1),
                "set_size_bare_5_10_db": round(float(low.set_size_bare.mean()), 2),
                "set_size_bare_15_20_db": round(float(high.set_size_bare.mean()), 2),
                "one_solve_ms": round(one_solve_ms, 1),
                "cost_ratio": round(result.ms_per_segment / one_solve_ms, 1),
            }
        )
        results[name] = summary
        rows.append(summary)

    header = (
        f"| solver | margin, mm | coverage bare | coverage calibrated [95 % CI] | set size bare (5-10 / 15-20 dB) | "
        f"set size calibrated | ms per segment ({args.resamples} replicates) | x one solve |"
    )
    print(header)
    print("|" + " --- |" * 8)
    for r in rows:
        low, high = r["coverage_interval"]
        print(
            f"| {r['solver']} | {r['margin_mm']:.1f} | {r['coverage_bare']:.2f} | {r['coverage']:.2f} "
            f"[{low:.2f}, {high:.2f}] | {r['set_size_bare_mean']:.1f} ({r['set_size_bare_5_10_db']:.1f} / "
            f"{r['set_size_bare_15_20_db']:.1f}) | {r['set_size_mean']:.0f} | {r['ms_per_segment']:.0f} | "
            f"{r['cost_ratio']:.0f} |"
        )
    record = {
        "solvers": results,
        "test_sets": [p.name for p in tests],
        "samples_per_set": args.n,
        "seed": 3030,
        "command": "benchmarks/confidence_calibration.py "
        + " ".join(
            ["--solvers", *args.solvers, "--n", str(args.n), "--resamples", str(args.resamples)]
            + (["--update-package"] if args.update_package else [])
        ),
        "commit": _commit(),
    }
    if args.update_package:
        PACKAGE_FILE.write_text(json.dumps(merged_package_record(PACKAGE_FILE, record), indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
