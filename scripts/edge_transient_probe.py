"""Probe where the solvers put their top peak on white noise, and how strong the filtered ends are.

Usage: BRAINFORGE_CACHE=... python scripts/edge_transient_probe.py [N_RECORDINGS]

Draws N recordings (default 6) of 10 s of white noise on the 64-channel 10-10 cap at 500 Hz,
prepares them as ``brainforge localize`` does (average reference, 1-70 Hz), and prints:

- the RMS over channels of the prepared EEG near the ends relative to the middle (2-8 s), in
  bins of samples from each end: the high-pass filter's edge transient;
- for sLORETA and the default network, the median |activity| by distance from the nearer end
  relative to the middle, and the top peak's time with the edges searched (the behaviour
  before ``FILTER_EDGE_S``) and as ``localize`` searches now.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np


def main(n_recordings: int) -> None:
    """Print the edge RMS profile and the peak times."""
    import mne

    from brainforge.anatomy import make_head_model
    from brainforge.localization import localize_prepared, prepare_recording

    mne.set_log_level("ERROR")
    names = make_head_model("1010-64").ch_names
    prepared = []
    for seed in range(n_recordings):
        noise = np.random.default_rng(seed).normal(scale=1e-5, size=(64, 5000))
        raw = mne.io.RawArray(noise, mne.create_info(names, 500.0, "eeg"))
        prepared.append(prepare_recording(raw, 500.0))
    rms = np.sqrt(np.mean([(p.data**2).mean(axis=0) for p in prepared], axis=0))
    middle = rms[1000:4000].mean()
    edges = [0, 5, 10, 25, 50, 100, 150, 250, 500, 1000]
    print("samples from the end  ", " ".join(f"{a}-{b}" for a, b in itertools.pairwise(edges)))
    for label, profile in (("start, RMS / middle", rms), ("end, RMS / middle", rms[::-1])):
        ratios = [profile[a:b].mean() / middle for a, b in itertools.pairwise(edges)]
        print(f"{label:22s}", " ".join(f"{r:.2f}" for r in ratios))
    bins_s = [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]
    for solver in ("sloreta", "default"):
        searched_all, now, profiles = [], [], []
        for p in prepared:
            result = localize_prepared(p, solver)
            magnitude = np.abs(result.region_data).max(axis=0)
            middle = np.median(magnitude[1000:4000])
            # Both ends folded together: the median |activity| per bin of distance from the nearer end.
            ends = [(magnitude[round(a * 500) : round(b * 500)], magnitude[::-1][round(a * 500) : round(b * 500)])
                    for a, b in bins_s]  # fmt: skip
            profiles.append([np.median(np.r_[first, last]) / middle for first, last in ends])
            searched_all.append(float(result.times[magnitude.argmax()]))
            now.append(result.peaks[0]["time_s"])
        profile = " ".join(
            f"{a:g}-{b:g} s: {r:.2f}" for (a, b), r in zip(bins_s, np.mean(profiles, axis=0), strict=True)
        )
        print(f"{solver}: median |activity| / middle by distance from the nearer end: {profile}")
        near = sum(min(t, 10.0 - t) < 0.5 for t in searched_all)
        print(
            f"{solver}: top peak, edges searched (s): {[round(t, 3) for t in searched_all]}; within 0.5 s of an end: "
            f"{near} of {len(prepared)}; as localize searches now: {[round(t, 3) for t in now]}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
