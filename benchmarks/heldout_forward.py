"""A network against MNE's sLORETA on forward models that training never used: the default-model goals.

Run: ``.venv/bin/python benchmarks/heldout_forward.py --model MODEL_DIR[,MODEL_DIR...] [--n 200] [--out heldout/]``

Writes test sets (64 channels of the 10-10 system, 1-2 patches, 15 % of them
centred on deep regions, sensor SNR 5-20 dB) whose EEG comes from forward
models outside the training bank (``make_forward_bank``'s defaults):

- ``shift15`` and ``shift25``: the whole cap moved 15 or 25 mm along the
  scalp towards the nose (MNE's exact forward at the moved electrodes);
- ``skull0.01``: a skull conductivity that is not on the bank's grid;
- ``sphere``: a 3-shell sphere instead of the BEM;
- on request (``--forwards ...,lower25``): ``lower25``, the whole cap 25 mm
  lower on the head (seed + 4; runs that use it need seeds 5 or more apart).

(``brainforge.evaluation.heldout``, the sets ``brainforge compare`` scores on,
here with 1-2 patches).

Every solver is fitted on the standard template head (as a user would), and
all run on the same samples through ``brainforge.evaluation.run_benchmark``,
also on the 16-channel 10-10 subset (more with ``--channel-counts 16,21,32``).
Then prints, per solver, with 95 % bootstrap intervals of the median:

- peak-centre error (mm), 64 channels, and its ratio to sLORETA's;
- spike-window time-course correlation;
- peak-centre error at 16 channels (and at each ``--channel-counts`` subset);
- peak-centre error of samples with a deep source;
- failures (ghost or non-finite estimates).

It also prints, without intervals, the median peak-centre error on each
forward model at 64 channels, and the share of the 64-channel samples whose
peak is the true centre region itself (0 mm) and the share within 8 mm
(failures count as misses).

and, as a reference for the first row, the peak-centre error of the region
nearest the true patch's amplitude-weighted centroid (the patch that holds the
true peak): what an estimate that recovers each patch's centre of mass exactly
would score. A patch grows its second ring towards a random direction, so its
growth centre (what the metric measures to) is off its centroid (what the EEG
sees); this row shows how close to 0 the metric can reasonably get. It also
prints the median distance between the centres of adjacent regions: the
metric moves in steps of about that size, so a median of 8 mm or less needs
the peak on the centre region itself in about half of the samples.

With two or more networks, it prints each later network's paired comparison
with the first on the same samples, at 64 channels and at each subset
(``brainforge.evaluation.summary.paired_difference``; mm, negative: the later
network is better): the mean per-sample difference of the peak-centre error
and the difference of the two medians, each with a 95 % paired bootstrap
interval, and the shares of samples where it is better and worse with their
sign test. Ghost failures enter with their error as scored; a non-finite
estimate (error NaN) leaves its pair out, and the count is printed.

Then the goals of the default model, for each network given (<= 8 mm and at most half of sLORETA's;
correlation >= 0.8; <= 12 mm at 16 channels; deep no worse than sLORETA). The
last line is one JSON object. Test sets are cached in ``--out`` (rerunning
reuses them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def centroid_reference_mm(paths: list[Path], head) -> np.ndarray:
    """Peak-centre error, mm, of the region nearest the true peak patch's amplitude-weighted centroid, per sample."""
    from brainforge.synthesis.store import read_test_set

    positions, distance_mm = head.region_centres_mm, head.region_distance_mm
    errors = []
    for path in paths:
        test = read_test_set(path)
        for i in range(len(test)):
            sources = np.abs(np.asarray(test.sources[i]))  # (times, regions)
            at_peak = sources[sources.max(axis=1).argmax()]
            patch = next((p for p in test.patches(i) if at_peak.argmax() in p), None)
            if patch is None:  # no source (a background-only sample)
                errors.append(np.nan)
                continue
            weights = at_peak[patch]
            centroid = weights @ positions[patch] / weights.sum()
            region = np.linalg.norm(positions - centroid, axis=1).argmin()
            centres = test.centres[i][test.centres[i] >= 0]
            errors.append(distance_mm[region, centres].min())
    return np.asarray(errors)


def adjacent_region_spacing_mm(head) -> float:
    """Median distance between the centres of adjacent regions of a head model, mm."""
    return float(np.median(head.region_distance_mm[head.region_adjacency.nonzero()]))


def channel_counts(text: str) -> list[int]:
    """Parse ``--channel-counts`` (16 always in), densest first; stop on one that names no 10-10 subset below 64."""
    from brainforge import BrainForgeError
    from brainforge.evaluation.benchmark import BenchmarkConfig

    try:
        counts = sorted({16, *(int(n) for n in text.split(",") if n.strip())}, reverse=True)
        if counts[0] >= 64:
            raise BrainForgeError(f"{counts[0]} channels is no subset of the 64")
        BenchmarkConfig(channel_counts=tuple(counts))  # its check: each count names a 10-10 subset
    except BrainForgeError as err:  # before ValueError, which it derives from
        raise SystemExit(f"--channel-counts {text!r}: {str(err).rstrip('.')}.") from None
    except ValueError:
        raise SystemExit(f"--channel-counts takes numbers of channels, got {text!r}.") from None
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="trained model folder(s), comma-separated ('default': the bundled one)"
    )
    parser.add_argument("--n", type=int, default=200, help="samples per forward model")
    parser.add_argument("--out", type=Path, default=Path("heldout"))
    parser.add_argument(
        "--seed",
        type=int,
        default=2026,
        help="seed of the first forward's set; the k-th uses seed + k, so runs whose seeds are fewer than 4 "
        "apart (5 with lower25) share source draws (through other forwards) and are not independent",
    )
    parser.add_argument(
        "--forwards",
        default="shift15,shift25,skull0.01,sphere",
        help="held-out forward models, comma-separated (also: lower25, the cap 25 mm lower on the head)",
    )
    parser.add_argument(
        "--channel-counts",
        default="16",
        help="10-10 subsets scored besides the 64 channels, comma-separated (of 16, 21, 32); the goal row is 16",
    )
    args = parser.parse_args()

    from brainforge import set_log_level
    from brainforge.anatomy import make_head_model

    set_log_level("warning")  # MNE's per-test-set inverse preparation would flood the table

    from brainforge.evaluation.benchmark import BenchmarkConfig, run_benchmark
    from brainforge.evaluation.compare import median_interval
    from brainforge.evaluation.heldout import write_heldout_test_sets
    from brainforge.evaluation.summary import format_paired_difference, paired_difference
    from brainforge.models import default_model_dir

    models = [str(default_model_dir()) if m == "default" else m for m in args.model.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    forwards = [name.strip() for name in args.forwards.split(",") if name.strip()]
    counts = channel_counts(args.channel_counts)  # before any work
    tests = write_heldout_test_sets(args.out, args.n, seed=args.seed, forwards=forwards)
    config = BenchmarkConfig(channel_counts=tuple(counts), n_bootstrap=200, seed=args.seed)
    result = run_benchmark([*models, "sloreta"], tests, args.out / "report", config, progress=False)
    samples = result.samples
    solvers = list(dict.fromkeys(samples.solver))
    rows = {}
    for solver in solvers:
        mine = samples[samples.solver == solver]
        full = mine[mine.n_channels == 64]
        errors_mm = full.peak_centre_error_mm.to_numpy(float)
        rows[solver] = {
            "peak_centre_error_mm": median_interval(errors_mm, 2000, args.seed),
            "correlation": median_interval(full.correlation.to_numpy(float), 2000, args.seed),
            "peak_centre_error_mm_deep": median_interval(
                full[full.depth == "deep"].peak_centre_error_mm.to_numpy(float), 2000, args.seed
            ),
            **{
                f"peak_centre_error_mm_{n}ch": median_interval(
                    mine[mine.n_channels == n].peak_centre_error_mm.to_numpy(float), 2000, args.seed
                )
                for n in counts
            },
            "failed": (int(full.failed.sum()), len(full)),
            "share_at_centre_region": float(np.mean(errors_mm == 0.0)),
            "share_le_8mm": float(np.mean(errors_mm <= 8.0)),
        }
    reference = rows.get("sloreta")
    print(f"{'median [95% CI]':34}" + "".join(f"{s[:24]:>28}" for s in solvers))
    by_count = [f"peak_centre_error_mm_{n}ch" for n in counts]
    for key in ("peak_centre_error_mm", "correlation", *by_count, "peak_centre_error_mm_deep"):
        cells = "".join(f"{'{:.1f} [{:.1f}, {:.1f}]'.format(*rows[s][key]):>28}" for s in solvers)
        print(f"{key:34}{cells}")
    print(
        f"{'failed (of 64-channel samples)':34}"
        + "".join(f"{'{} / {}'.format(*rows[s]['failed']):>28}" for s in solvers)
    )
    shares = (("share_at_centre_region", "share: peak on centre region"), ("share_le_8mm", "share: peak within 8 mm"))
    for key, label in shares:
        print(f"{label:34}" + "".join(f"{rows[s][key]:>28.2f}" for s in solvers))
    at_64 = samples[samples.n_channels == 64]
    by_forward = at_64.groupby(["forward", "solver"], sort=False).peak_centre_error_mm.median()
    for forward in dict.fromkeys(at_64.forward):
        cells = "".join(f"{by_forward[forward, s]:>28.1f}" for s in solvers)
        print(f"{'median, forward ' + forward:34}{cells}")
    template = make_head_model("1010-64")  # the head every solver was fitted on
    reference_mm = median_interval(centroid_reference_mm(tests, template), 2000, args.seed)
    print(f"{'reference: true-patch centroid, mm':34}{'{:.1f} [{:.1f}, {:.1f}]'.format(*reference_mm):>28}")
    spacing_mm = adjacent_region_spacing_mm(template)
    print(f"{'spacing of adjacent regions, mm':34}{spacing_mm:>28.1f}")
    networks = [s for s in solvers if s != "sloreta"]
    paired = {}
    for other in networks[1:]:
        paired[other] = {
            f"{n}ch": paired_difference(samples, networks[0], other, n_channels=n, seed=args.seed)
            for n in (64, *counts)
        }
        for n_channels, d in paired[other].items():
            print(f"paired {other} - {networks[0]}, {n_channels}: {format_paired_difference(d)}")
    goals = {}
    for network in solvers:
        if reference is None or network == "sloreta":
            continue
        ours, theirs = rows[network], reference
        ratio = ours["peak_centre_error_mm"][0] / theirs["peak_centre_error_mm"][0]
        print(f"{network}: peak-centre error ratio to sLORETA {ratio:.2f}")
        goals[network] = {
            "peak_centre_error_le_8mm": ours["peak_centre_error_mm"][0] <= 8.0,
            "at_most_half_of_sloreta": ratio <= 0.5,
            "correlation_ge_0.8": ours["correlation"][0] >= 0.8,
            "16ch_le_12mm": ours["peak_centre_error_mm_16ch"][0] <= 12.0,
            "deep_no_worse_than_sloreta": ours["peak_centre_error_mm_deep"][0]
            <= theirs["peak_centre_error_mm_deep"][0],
        }
        for goal, met in goals[network].items():
            print(f"  goal {goal:29}{'met' if met else 'NOT met':>12}")
    print(
        json.dumps(
            {
                "solvers": rows,
                "goals": goals,
                "paired_difference_to_first": paired,
                "median_by_forward_64ch": {f"{f} {s}": float(v) for (f, s), v in by_forward.items()},
                "centroid_reference_mm": reference_mm,
                "adjacent_region_spacing_mm": spacing_mm,
                "n_per_forward": args.n,
                "forward_models": forwards,
            }
        )
    )


if __name__ == "__main__":
    main()
