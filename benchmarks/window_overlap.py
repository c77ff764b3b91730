"""How much window overlap does a whole-segment network need on continuous EEG? Accuracy and cost per overlap.

Run: ``.venv/bin/python benchmarks/window_overlap.py [--spikes 60] [--snr-db 5 10] [--seeds 7 8]``

A network trained on 1-s segments localizes a long recording window by
window (``LearnedSolver``): windows overlap by a fraction and are blended with
a Hann taper. More overlap means more forward passes per recorded minute.
This benchmark simulates continuous recordings (``simulate_recording``: one
spike per second, every fourth one deep, at ``--snr-db``), shifts them by
0.32 s so that spikes straddle window boundaries instead of sitting where the
simulation joined its 1-s pieces, and localizes each with the default network
at several overlaps, sLORETA beside it. Per overlap: the share of spikes whose
strongest region (within 10 ms of the true peak) lies in the true patch, the
mean distance to the patch (mm), and the solver's seconds per recorded minute
(``apply`` alone, same run). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np

SHIFT_S = 0.32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=int, default=60, help="spikes (seconds) per recording")
    parser.add_argument("--snr-db", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    parser.add_argument("--overlaps", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5])
    args = parser.parse_args()

    from brainforge.anatomy import make_head_model
    from brainforge.inverse import ClassicalSolver, LearnedSolver
    from brainforge.localization.demo import simulate_recording, source_errors_mm
    from brainforge.models import default_model_dir
    from brainforge.nmm import default_spike_library, read_spike_library

    head = make_head_model("1010-64")
    library = read_spike_library(default_spike_library(progress=False))
    kinds = tuple("deep" if i % 4 == 3 else "cortical" for i in range(args.spikes))
    solvers = {f"default, overlap {o:g}": LearnedSolver(default_model_dir(), overlap=o) for o in args.overlaps}
    solvers["sLORETA"] = ClassicalSolver("sloreta")
    for solver in solvers.values():
        solver.fit(head)
    errors = {name: [] for name in solvers}
    seconds = dict.fromkeys(solvers, 0.0)
    minutes = 0.0
    for snr_db in args.snr_db:
        for seed in args.seeds:
            raw, truth = simulate_recording(head, library, kinds, snr_db=snr_db, seed=seed)
            shift = round(SHIFT_S * raw.info["sfreq"])
            eeg = raw.get_data()[:, shift:]
            eeg = eeg - eeg.mean(axis=0)
            times = np.arange(eeg.shape[1]) / raw.info["sfreq"]
            for source in truth:
                source.time_s -= SHIFT_S
            truth = [s for s in truth if s.time_s > 0.02]
            minutes += times[-1] / 60.0
            for name, solver in solvers.items():
                start = time.perf_counter()
                activity = solver.apply_regions(eeg)
                seconds[name] += time.perf_counter() - start
                result = SimpleNamespace(head=head, times=times, region_data=activity.data)
                errors[name].extend(source_errors_mm(result, truth))
            print(f"SNR {snr_db:g} dB, seed {seed}: done", flush=True)
    rows = []
    print(f"{'solver':<24} {'spikes':>7} {'in patch':>9} {'mean mm':>8} {'s/min':>7}")
    for name in solvers:
        error = np.asarray(errors[name])
        row = {
            "solver": name,
            "spikes": len(error),
            "in_patch_share": round(float(np.mean(error == 0.0)), 3),
            "mean_error_mm": round(float(error.mean()), 2),
            "s_per_min": round(seconds[name] / minutes, 3),
        }
        rows.append(row)
        print(
            f"{name:<24} {row['spikes']:>7} {row['in_patch_share']:>9.3f} {row['mean_error_mm']:>8.2f} "
            f"{row['s_per_min']:>7.2f}"
        )
    print(json.dumps({"snr_db": args.snr_db, "seeds": args.seeds, "shift_s": SHIFT_S, "rows": rows}))


if __name__ == "__main__":
    main()
