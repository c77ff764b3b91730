"""Networks against MNE's sLORETA on EEG from another group's head model: DeepSIF's published leadfield.

Run: ``.venv/bin/python benchmarks/reference_head.py --model MODEL_DIR[,MODEL_DIR...] [--n 200] [--seed 4000]
[--deepsif-dir ../shared/data/deepsif] [--out reference_head/]``

Draws a test set (1-2 cortical patches, sensor SNR 5-20 dB, the 64 channels
of the 10-10 cap) whose EEG comes from DeepSIF's published 75 x 994 region
leadfield: another group's BEM on fsaverage, their electrode positions and
parcellation (``brainforge.evaluation.reference_head``). Every solver is
fitted on our template head, as a user would, and scored on the same
samples at 64 channels and on the 16-channel 10-10 subset. The metrics
compare positions across the two parcellations (region centres, mm), so
even a perfect estimate scores the distance from the true centre to our
nearest region: the ``centre floor`` row.

Prints, per solver, medians with 95 % bootstrap intervals (2,000 resamples)
of the peak-centre error at 64 and 16 channels, the spike-window
correlation and the peak-patch error, the failures (ghost or non-finite),
the ratio to sLORETA's median (``--classical`` adds other classical solvers
to the table: eLORETA, dSPM, MNE, LCMV), and the paired difference of each network
with sLORETA and with the first network
(``brainforge.evaluation.summary.paired_difference``; mm, negative: the
network is better). The last line is one JSON object. The test set is
cached in ``--out`` and the per-sample scores written to
``--out/samples.csv.gz`` (``scripts/pool_paired.py`` pools several runs).

The reference files are for evaluation only, never for training
(``../shared/data/README.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DEFAULT_DEEPSIF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="trained model folder(s), comma-separated ('default': the bundled one)"
    )
    parser.add_argument("--n", type=int, default=200, help="samples in the test set")
    parser.add_argument("--seed", type=int, default=4000, help="seed of the test set and of the bootstrap")
    parser.add_argument("--deepsif-dir", type=Path, default=DEFAULT_DEEPSIF_DIR)
    parser.add_argument("--out", type=Path, default=Path("reference_head"))
    parser.add_argument(
        "--classical", default="sloreta", help="classical solvers scored beside, comma-separated (sloreta is added)"
    )
    args = parser.parse_args()

    from brainforge import set_log_level
    from brainforge.anatomy import make_head_model
    from brainforge.evaluation.compare import median_interval
    from brainforge.evaluation.reference_head import score_on_reference_head, write_reference_head_test_set
    from brainforge.evaluation.summary import format_paired_difference, paired_difference
    from brainforge.models import default_model_dir

    set_log_level("warning")
    if not (args.deepsif_dir / "leadfield_75_20k.mat").is_file():
        raise SystemExit(f"No DeepSIF anatomy in {args.deepsif_dir}; pass --deepsif-dir FOLDER (see docs/anatomy.md).")
    models = [str(default_model_dir()) if m.strip() == "default" else m.strip() for m in args.model.split(",")]
    path = write_reference_head_test_set(args.deepsif_dir, args.out, args.n, seed=args.seed)
    head = make_head_model("1010-64")
    classical = list(dict.fromkeys(["sloreta", *(c.strip() for c in args.classical.lower().split(",") if c.strip())]))
    samples = score_on_reference_head([*models, *classical], path, head)
    samples.to_csv(args.out / "samples.csv.gz", index=False)
    solvers = list(dict.fromkeys(samples.solver))
    rows = {}
    for solver in solvers:
        mine = samples[samples.solver == solver]
        full, sparse = mine[mine.n_channels == 64], mine[mine.n_channels == 16]
        rows[solver] = {
            "peak_centre_error_mm": median_interval(full.peak_centre_error_mm.to_numpy(float), 2000, args.seed),
            "peak_centre_error_mm_16ch": median_interval(sparse.peak_centre_error_mm.to_numpy(float), 2000, args.seed),
            "correlation": median_interval(full.correlation.to_numpy(float), 2000, args.seed),
            "peak_patch_error_mm": median_interval(full.peak_patch_error_mm.to_numpy(float), 2000, args.seed),
            "failed": (int(full.failed.sum()), len(full)),
            "ms_per_segment_median": float(full.ms.median()),
        }
    print(f"{'median [95% CI]':34}" + "".join(f"{s[:24]:>28}" for s in solvers))
    for key in ("peak_centre_error_mm", "peak_centre_error_mm_16ch", "correlation", "peak_patch_error_mm"):
        cells = "".join(f"{'{:.1f} [{:.1f}, {:.1f}]'.format(*rows[s][key]):>28}" for s in solvers)
        print(f"{key:34}{cells}")
    failed = "".join(f"{'{} / {}'.format(*rows[s]['failed']):>28}" for s in solvers)
    print(f"{'failed (of 64-channel samples)':34}{failed}")
    print(f"{'ms per segment (median)':34}" + "".join(f"{rows[s]['ms_per_segment_median']:>28.1f}" for s in solvers))
    floor = samples[(samples.solver == solvers[0]) & (samples.n_channels == 64)].centre_floor_mm.to_numpy(float)
    floor_mm = median_interval(floor, 2000, args.seed)
    print(f"{'centre floor (our nearest region)':34}{'{:.1f} [{:.1f}, {:.1f}]'.format(*floor_mm):>28}")
    networks = [s for s in solvers if s not in classical]
    paired = {}
    for network in networks:
        ratio = rows[network]["peak_centre_error_mm"][0] / rows["sloreta"]["peak_centre_error_mm"][0]
        rows[network]["ratio_to_sloreta"] = ratio
        print(f"{network}: peak-centre error ratio to sLORETA {ratio:.2f}")
        pairs = [("sloreta", network)] + ([(networks[0], network)] if network != networks[0] else [])
        for first, other in pairs:
            for n_channels in (64, 16):
                d = paired_difference(samples, first, other, n_channels=n_channels, seed=args.seed)
                paired[f"{other} - {first}, {n_channels}ch"] = d
                print(f"paired {other} - {first}, {n_channels}ch: {format_paired_difference(d)}")
    summary = {"solvers": rows, "paired": paired, "centre_floor_mm": floor_mm, "n": len(floor)}
    print(json.dumps(summary, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))


if __name__ == "__main__":
    main()
