"""Where solvers fitted on our template put sources from DeepSIF's published leadfield, and why.

Usage:
    BRAINFORGE_CACHE=... python scripts/reference_head_bias.py displacement TEST_SET SOLVER[,SOLVER...]
    BRAINFORGE_CACHE=... python scripts/reference_head_bias.py coregistration [DEEPSIF_DIR]

``displacement`` takes a test set written by ``benchmarks/reference_head.py``
(``OUT/deepsif_leadfield.zarr``) and, for each solver (``default``,
``sloreta``, a model folder) fitted on our 64-channel template, prints over the
single-patch samples the mean displacement (mm; x right, y anterior, z up) of
the estimated peak region's centre from the true centre at the true peak
time, the median distance, the radial component (along the direction from
the centroid of our cortical region centres to the true centre), and the
vertical and outward components for lateral sources (|x| > 40 mm from that
centroid).

``coregistration`` computes our BEM's leadfield for DeepSIF's own sources and
72 of its electrode names (Nz, TP11 and TP12 are not in MNE's ``fsaverage_1005``) with our cap
moved along the vertical axis (0, -10, -20, -30 mm) and forwards/backwards
(+-10 mm at -20 mm), each projected back onto our scalp, and prints the
median topography correlation with the published leadfield over its 994
regions (as ``tests/test_connectivity_deepsif.py`` does for the unmoved cap).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DEFAULT_DEEPSIF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif"
MOVES_MM = ((0, 0, 0), (0, 0, -10), (0, 0, -20), (0, 0, -30), (0, -10, -20), (0, 10, -20))


def displacement(test_path: str, solvers: list[str]) -> None:
    """Print the mean and typical displacement of each solver's peak from the true single-patch centre."""
    from brainforge import set_log_level
    from brainforge.anatomy import make_head_model
    from brainforge.inverse import CLASSICAL_SOLVERS, make_solver
    from brainforge.inverse.solvers import DEFAULT_LAMBDA2
    from brainforge.synthesis.store import read_test_set

    set_log_level("warning")
    test = read_test_set(test_path)
    head = make_head_model("1010-64").pick_channels(list(test.metadata["ch_names"]))
    reference_mm = np.asarray(test.metadata["region_centres_mm"], float)
    middle = head.region_centres_mm[~head.region_is_deep].mean(axis=0)
    singles = [i for i in range(len(test)) if (test.centres[i] >= 0).sum() == 1]
    true_mm = np.array([reference_mm[test.centres[i][test.centres[i] >= 0][0]] for i in singles])
    radial = (true_mm - middle) / np.linalg.norm(true_mm - middle, axis=1, keepdims=True)
    outward = np.sign(true_mm[:, 0] - middle[0])
    lateral = np.abs(true_mm[:, 0] - middle[0]) > 40.0
    print(f"{len(singles)} single-patch samples of {len(test)}; {lateral.sum()} lateral (|x| > 40 mm)")
    for name in solvers:
        options = {"lambda2": DEFAULT_LAMBDA2} if name.lower() in CLASSICAL_SOLVERS else {}
        solver = make_solver(name, **options).fit(head)
        moved = []
        for i in singles:
            truth = np.asarray(test.sources[i], float).T
            eeg = np.asarray(test.eeg[i], float).T
            estimate = solver.apply_regions(eeg - eeg.mean(axis=0), test.sfreq).data
            peak_time = int(np.abs(truth).max(axis=0).argmax())
            moved.append(head.region_centres_mm[int(np.abs(estimate[:, peak_time]).argmax())])
        d = np.array(moved) - true_mm
        if not lateral.any():
            print(f"{Path(name).name}: mean displacement {np.round(d.mean(axis=0), 1)} mm (no lateral sources)")
            continue
        print(
            f"{Path(name).name}: mean displacement {np.round(d.mean(axis=0), 1)} mm, median distance "
            f"{np.median(np.linalg.norm(d, axis=1)):.1f} mm, radial component median "
            f"{np.median((d * radial).sum(axis=1)):+.1f} mm; lateral sources: vertical median "
            f"{np.median(d[lateral, 2]):+.1f} mm, outward median {np.median((d[:, 0] * outward)[lateral]):+.1f} mm"
        )


def coregistration(deepsif_dir: str | Path) -> None:
    """Print how well our BEM reproduces the published leadfield with our cap moved."""
    from brainforge import set_log_level
    from brainforge.anatomy import get_electrodes, load_deepsif_anatomy
    from brainforge.anatomy.bem import make_template_bem, make_template_bem_surfaces
    from brainforge.anatomy.forward import compute_leadfield
    from brainforge.anatomy.head_model import region_sum
    from brainforge.anatomy.montage import Electrodes, project_to_scalp

    set_log_level("warning")
    reference = load_deepsif_anatomy(deepsif_dir)
    surfaces = make_template_bem_surfaces()
    bem = make_template_bem(surfaces=surfaces)
    names = [n for n in reference.ch_names if n not in ("Nz", "TP11", "TP12")]
    published = reference.pick_channels(names).region_leadfield
    published = published - published.mean(axis=0)
    # As make_head_model(cap_vertical_shift_mm=...) does: the cap on the scalp, moved, then back onto it.
    scalp = (surfaces.centre, surfaces.outer_skin, surfaces.outer_skin_tris)
    nominal = project_to_scalp(get_electrodes(names).pos, *scalp)
    print("| cap moved (x, y, z), mm | mean electrode move, mm | median topography correlation |")
    print("| --- | --- | --- |")
    for move in MOVES_MM:
        moved = nominal + np.array(move, float)
        pos = project_to_scalp(moved, *scalp)
        dense = compute_leadfield(reference.source_pos_mm, reference.source_nn, Electrodes(names, pos), bem)
        ours = region_sum(dense, reference.source_region, reference.n_regions)
        ours = ours - ours.mean(axis=0)
        r = (ours * published).sum(axis=0) / np.linalg.norm(ours, axis=0) / np.linalg.norm(published, axis=0)
        shift = np.linalg.norm(pos - nominal, axis=1).mean()
        print(f"| {move} | {shift:.1f} | {np.median(r):.3f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "displacement":
        displacement(sys.argv[2], sys.argv[3].split(","))
    elif len(sys.argv) in (2, 3) and sys.argv[1] == "coregistration":
        coregistration(sys.argv[2] if len(sys.argv) == 3 else DEFAULT_DEEPSIF_DIR)
    else:
        raise SystemExit(__doc__.split("\n\n")[1])
