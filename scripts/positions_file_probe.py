"""What a separate electrode-positions file (``localize --positions``) changes for a cap that sat lower.

Usage:
    BRAINFORGE_CACHE=... python scripts/positions_file_probe.py [--lowered-mm 25] [--seeds 7,8,9] [--sources 6]

Writes a 32-channel ``.sfp`` digitization (cm, with fiducials) of a cap moved
``--lowered-mm`` down the head frame's vertical axis, builds the head model that
``localize`` builds for those positions (projected onto the template scalp),
simulates ``--sources`` single cortical spikes per seed at 15 dB on it
(:func:`brainforge.localization.simulate_recording`, which stores the standard
positions of the names, as many recordings do), and localizes each recording
twice per solver: with the file's positions and with the standard ones. It
prints, per solver, how many sources were found (0 mm: the peak region lies in
the patch) and the mean peak-patch error, mm, then the same as one JSON object.

With the positions the solver uses the very forward model that simulated the
EEG (an inverse crime): this shows that the positions are used, and what an
uncorrected cap costs, not the accuracy on a real head.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import mne
import numpy as np

from brainforge.anatomy import CHANNEL_SUBSETS
from brainforge.localization import (
    PreprocessingConfig,
    localize_prepared,
    prepare_recording,
    simulate_recording,
    source_errors_mm,
)
from brainforge.localization.core import head_model_for
from brainforge.localization.positions import standard_positions_m
from brainforge.nmm import default_spike_library, read_spike_library

SOLVERS = ("sloreta", "default")


def write_lowered_sfp(path: Path, names: list[str], lowered_m: float) -> Path:
    """Write the standard positions of ``names`` moved ``lowered_m`` down, with the standard fiducials, in cm."""
    info = mne.create_info(["Cz"], 500.0, "eeg")
    info.set_montage("colin27_1005")
    fiducial_names = {1: "FidT9", 2: "FidNz", 3: "FidT10"}
    rows = [
        (fiducial_names[d["ident"]], d["r"])
        for d in info["dig"]
        if d["kind"] == mne.io.constants.FIFF.FIFFV_POINT_CARDINAL
    ]
    rows += list(zip(names, standard_positions_m(names) + np.array([0.0, 0.0, -lowered_m]), strict=True))
    path.write_text("".join(f"{name}\t{x * 100:.5f}\t{y * 100:.5f}\t{z * 100:.5f}\n" for name, (x, y, z) in rows))
    return path


def main() -> None:
    """Run the probe and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lowered-mm", type=float, default=25.0)
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--sources", type=int, default=6)
    args = parser.parse_args()
    mne.set_log_level("error")  # the filter and montage messages of every recording
    names = list(CHANNEL_SUBSETS["1010-32"])
    library = read_spike_library(default_spike_library())
    errors: dict[tuple[str, str], list[float]] = {(s, p): [] for s in SOLVERS for p in ("file", "standard")}
    with tempfile.TemporaryDirectory() as folder:
        path = write_lowered_sfp(Path(folder) / "cap.sfp", names, args.lowered_mm * 1e-3)
        layout = mne.io.RawArray(
            np.random.default_rng(0).normal(scale=1e-5, size=(len(names), 1000)),
            mne.create_info(names, 500.0, "eeg"),
            verbose="error",
        )
        head = head_model_for(prepare_recording(layout, 500.0, PreprocessingConfig(positions=str(path), l_freq=None)))
        for seed in (int(s) for s in args.seeds.split(",")):
            raw, truth = simulate_recording(head, library, ("cortical",) * args.sources, snr_db=15.0, seed=seed)
            for positions, label in ((str(path), "file"), (None, "standard")):
                prepared = prepare_recording(raw, 500.0, PreprocessingConfig(positions=positions))
                for solver in SOLVERS:
                    errors[solver, label] += source_errors_mm(localize_prepared(prepared, solver), truth)
    print(f"Cap {args.lowered_mm:g} mm lower, 32 channels, seeds {args.seeds}, {args.sources} sources each, 15 dB")
    print("| solver | positions | found (0 mm) | mean peak-patch error, mm |")
    print("| --- | --- | --- | --- |")
    figures = {}
    for (solver, label), values in errors.items():
        values_mm = np.array(values)
        found = int((values_mm == 0).sum())
        print(f"| {solver} | {label} | {found} of {len(values_mm)} | {values_mm.mean():.1f} |")
        figures[f"{solver}_{label}"] = {"found": found, "n": len(values_mm), "mean_mm": float(values_mm.mean())}
    print(json.dumps({"lowered_mm": args.lowered_mm, "seeds": args.seeds, "results": figures}))


if __name__ == "__main__":
    main()
