"""Paired differences of two networks pooled over several held-out benchmark runs.

Usage: python scripts/pool_paired.py SAMPLES_CSV:FIRST:OTHER [SAMPLES_CSV:FIRST:OTHER ...]

Each argument is one ``benchmarks/heldout_forward.py`` run's ``report/samples.csv``
(``.csv.gz`` too) and the names the two networks had in it (``default`` is
written ``default_model``; a folder by its last part). Rows are matched
within each run (the same sample scored by both), the runs are stacked, and
:func:`brainforge.evaluation.summary.paired_difference` prints ``OTHER -
FIRST`` at 64 and 16 channels with 95 % bootstrap intervals. Pool only runs
whose samples are independent: ``heldout_forward.py --seed S`` draws the
k-th forward's set with seed ``S + k``, so seeds at least 4 apart share no
samples.
"""

from __future__ import annotations

import sys


def pooled_samples(specs: list[str]):
    """Stack the runs' rows, naming the two networks ``first`` and ``other`` and each test set by its run."""
    import pandas as pd

    frames = []
    for run, spec in enumerate(specs):
        path, first, other = spec.rsplit(":", 2)
        frame = pd.read_csv(path)
        names = set(frame["solver"])
        for name in (first, other):
            if name not in names:
                raise SystemExit(f"{path} has no solver {name!r}; it has {', '.join(sorted(names))}.")
        frame = frame[frame["solver"].isin([first, other])].copy()
        frame["solver"] = frame["solver"].map({first: "first", other: "other"})
        frame["test_set"] = f"run{run}:" + frame["test_set"].astype(str)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def main(specs: list[str]) -> None:
    """Print the pooled paired differences at 64 and 16 channels."""
    from brainforge.evaluation.summary import format_paired_difference, paired_difference

    samples = pooled_samples(specs)
    for n_channels in (64, 16):
        d = paired_difference(samples, "first", "other", n_channels)
        print(f"{n_channels} ch, other - first, pooled from {len(specs)} runs: {format_paired_difference(d)}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or any(arg.count(":") < 2 for arg in sys.argv[1:]):
        raise SystemExit(__doc__.split("\n\n")[1])
    main(sys.argv[1:])
