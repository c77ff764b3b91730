"""Paired differences of two networks pooled over several held-out benchmark runs.

Usage: python scripts/pool_paired.py [--sets NAME,NAME] SAMPLES_CSV:FIRST:OTHER [SAMPLES_CSV:FIRST:OTHER ...]

Each argument is one ``benchmarks/heldout_forward.py`` run's ``report/samples.csv``
(``.csv.gz`` too) and the names the two networks had in it (``default`` is
written ``default_model``; a folder by its last part). Rows are matched
within each run (the same sample scored by both), the runs are stacked, and
:func:`brainforge.evaluation.summary.paired_difference` prints ``OTHER -
FIRST`` at every channel count the runs hold (64, 16, and any asked for
with ``heldout_forward.py --channel-counts``) with 95 % bootstrap intervals. Pool only runs
whose samples are independent: ``heldout_forward.py --seed S`` draws the
k-th forward's set with seed ``S + k``, so seeds at least 4 apart (5 when
the runs include ``lower25``) share no samples. ``--sets`` keeps only the test sets of those names (for example
``--sets lower25`` or ``--sets shift15,shift25,skull0.01,sphere``; the
``.zarr`` suffix may be left out); without it every set is pooled.
"""

from __future__ import annotations

import sys


def pooled_samples(specs: list[str], sets: list[str] | None = None):
    """Stack the runs' rows, naming the two networks ``first`` and ``other`` and each test set by its run."""
    import pandas as pd

    keep = None if sets is None else {name if name.endswith(".zarr") else f"{name}.zarr" for name in sets}

    frames = []
    for run, spec in enumerate(specs):
        path, first, other = spec.rsplit(":", 2)
        frame = pd.read_csv(path)
        names = set(frame["solver"])
        for name in (first, other):
            if name not in names:
                raise SystemExit(f"{path} has no solver {name!r}; it has {', '.join(sorted(names))}.")
        frame = frame[frame["solver"].isin([first, other])].copy()
        if keep is not None:
            frame = frame[frame["test_set"].isin(keep)]
            if frame.empty:
                raise SystemExit(f"{path} holds none of the test sets {', '.join(sorted(keep))}.")
        frame["solver"] = frame["solver"].map({first: "first", other: "other"})
        frame["test_set"] = f"run{run}:" + frame["test_set"].astype(str)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def main(specs: list[str], sets: list[str] | None = None) -> None:
    """Print the pooled paired differences at every channel count the runs hold, densest first."""
    from brainforge.evaluation.summary import format_paired_difference, paired_difference

    samples = pooled_samples(specs, sets)
    label = "" if sets is None else f" ({','.join(sets)})"
    for n_channels in sorted(set(samples["n_channels"]), reverse=True):
        d = paired_difference(samples, "first", "other", n_channels)
        runs = samples.loc[samples["n_channels"] == n_channels, "test_set"].str.split(":").str[0].nunique()
        print(f"{n_channels} ch, other - first, pooled from {runs} runs{label}: {format_paired_difference(d)}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = None
    if arguments[:1] == ["--sets"] and len(arguments) > 1:
        chosen, arguments = arguments[1].split(","), arguments[2:]
    if not arguments or any(arg.count(":") < 2 for arg in arguments):
        raise SystemExit(__doc__.split("\n\n")[1])
    main(arguments, chosen)
