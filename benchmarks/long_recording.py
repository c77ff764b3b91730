"""Hour-long recordings in bounded memory: seconds per recorded minute and peak RSS, default model and sLORETA.

Run: ``.venv/bin/python benchmarks/long_recording.py [--minutes 1 10 60] [--solvers default sloreta]``

For each length, a synthetic 64-channel 500 Hz recording (one spike per
second over neural-mass background, fresh sensor noise every 10 s; written by
``brainforge.localization.write_long_recording``) is localized end to end the
way ``brainforge localize`` does it (``localize_file``: read in 20-s blocks,
1-70 Hz band-pass, solver, Parquet region time courses, the source estimate
and report around the largest activity), each run in its own process. The
table gives the compute seconds per recorded minute (after imports) and the
process's own peak resident memory (Linux's VmHWM, read by the child: ``wait4``'s
``ru_maxrss`` would count the parent's memory copied by ``fork``).

The reference, in the same run: MNE-Python's own way on the ``--mne-minutes``
recording (``read_raw_fif(preload=True)``, average reference, the same
band-pass, ``apply_inverse_raw`` with sLORETA and the same fixed-orientation
inverse, then region means), which holds the dense dipole x time array.

Goals (issue 15): <= 3 s per recorded minute on two cores (20x real time);
peak RSS flat in duration and under 3 GB. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LOCALIZE = """
import json, sys, time
from brainforge.localization import localize_file
start = time.perf_counter()
localize_file(sys.argv[1], sys.argv[2], sys.argv[3])
from brainforge._resources import peak_rss_gb
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_gb": peak_rss_gb()}))
"""

MNE_REFERENCE = """
import json, sys, time
import mne
import numpy as np
from brainforge.anatomy import make_head_model
from brainforge.inverse import ClassicalSolver
from brainforge.inverse.solvers import region_mean_matrix
solver = ClassicalSolver("sloreta").fit(make_head_model("1010-64"))
inverse = mne.minimum_norm.make_inverse_operator(
    solver.info_, solver.forward_, solver.noise_cov_, loose=0.0, depth=None, fixed=True, verbose="error"
)
start = time.perf_counter()
raw = mne.io.read_raw_fif(sys.argv[1], preload=True, verbose="error")
raw.set_eeg_reference("average", projection=True, verbose="error")
raw.filter(1.0, 70.0, verbose="error")
stc = mne.minimum_norm.apply_inverse_raw(raw, inverse, 1.0 / 9.0, "sLORETA", verbose="error")
regions = region_mean_matrix(solver.head_.source_region, solver.head_.n_regions) @ stc.data
from brainforge._resources import peak_rss_gb
print(json.dumps({"seconds": time.perf_counter() - start, "dipole_array_gb": stc.data.nbytes / 1e9,
                  "peak_rss_gb": peak_rss_gb()}))
"""

IMPORTS_ONLY = """
import json, brainforge.localization, brainforge.inverse, torch, mne
from brainforge._resources import peak_rss_gb
print(json.dumps({"peak_rss_gb": peak_rss_gb()}))
"""


def _measure(code: str, *args: str) -> tuple[dict, float]:
    """Run ``code`` in a fresh interpreter; return its JSON line and its own peak RSS, GB.

    The child reports its peak itself (``brainforge._resources.peak_rss_gb``:
    Linux's VmHWM). ``wait4``'s ``ru_maxrss`` would also count the parent's
    memory copied by ``fork`` before ``exec``: after writing the hour-long
    recording this process holds 1.7 GB, and every child would "peak" there.
    """
    process = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if process.returncode:
        raise RuntimeError(f"child failed ({process.returncode}):\n{process.stderr[-3000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    return result, result["peak_rss_gb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    parser.add_argument("--solvers", nargs="+", default=["default", "sloreta"])
    parser.add_argument("--mne-minutes", type=float, default=1.0, help="length for the MNE reference (0: skip)")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the recordings (default: temporary)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from brainforge.anatomy import make_head_model
    from brainforge.localization import write_long_recording
    from brainforge.nmm import default_spike_library, read_spike_library

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="brainforge-long-"))
    workdir.mkdir(parents=True, exist_ok=True)
    head = make_head_model("1010-64")
    library = read_spike_library(default_spike_library())
    _, baseline_gb = _measure(IMPORTS_ONLY)
    rows = []
    print(f"Imports alone: {baseline_gb:.2f} GB peak RSS", flush=True)
    print(f"{'solver':<22} {'minutes':>8} {'s/min':>8} {'x real time':>12} {'peak RSS GB':>12}", flush=True)
    lengths = sorted(set(args.minutes) | ({args.mne_minutes} if args.mne_minutes else set()))
    try:
        for minutes in lengths:
            path = workdir / f"long_{minutes:g}min_raw.fif"
            if not path.is_file():
                write_long_recording(path, minutes, head, library, seed=args.seed)
            runs = [(s, LOCALIZE) for s in args.solvers if minutes in args.minutes]
            if minutes == args.mne_minutes:
                runs.append(("MNE apply_inverse_raw", MNE_REFERENCE))
            for solver, code in runs:
                out = workdir / f"out_{solver.split()[0]}_{minutes:g}"
                shutil.rmtree(out, ignore_errors=True)
                result, rss_gb = _measure(code, str(path), str(out), solver)
                shutil.rmtree(out, ignore_errors=True)
                per_minute = result["seconds"] / minutes
                row = {
                    "solver": solver,
                    "minutes": minutes,
                    "seconds": round(result["seconds"], 2),
                    "s_per_min": round(per_minute, 3),
                    "realtime_factor": round(60.0 / per_minute, 1),
                    "peak_rss_gb": round(rss_gb, 3),
                }
                rows.append(row)
                print(
                    f"{solver:<22} {minutes:>8g} {per_minute:>8.2f} {60.0 / per_minute:>12.1f} {rss_gb:>12.2f}",
                    flush=True,
                )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    reference = [r for r in rows if r["solver"].startswith("MNE")]
    ours = [r for r in rows if r["solver"] == "sloreta" and r["minutes"] == args.mne_minutes]
    if reference and ours:
        print(
            f"sLORETA against MNE's apply_inverse_raw at {args.mne_minutes:g} min: "
            f"{reference[0]['seconds'] / ours[0]['seconds']:.1f}x the speed, "
            f"{reference[0]['peak_rss_gb'] / ours[0]['peak_rss_gb']:.1f}x less memory"
        )
    print(json.dumps({"imports_peak_rss_gb": round(baseline_gb, 3), "rows": rows}))


if __name__ == "__main__":
    main()
