"""Check the template forward model against independent references.

Run: ``.venv/bin/python benchmarks/head_model_validation.py [--deepsif DIR]``

Prints a table of median topography correlations (after removing the channel
mean) between our BEM leadfield and:

- MNE's 3-shell sphere model for the same sources and electrodes;
- the same BEM with a skull conductivity of 0.003 S/m and with electrodes
  jittered by 10 mm (the alternative forward models: how far they move);
- the published DeepSIF 75 x 994 leadfield, region by region, for its 72
  electrodes found in ``fsaverage_1005`` (when the DeepSIF folder exists).

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DEFAULT_DEEPSIF = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif"


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return (a * b).sum(axis=0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0)


def deepsif_correlation(folder: Path) -> np.ndarray:
    from brainforge.anatomy import get_electrodes, load_deepsif_anatomy
    from brainforge.anatomy.bem import make_template_bem, make_template_bem_surfaces
    from brainforge.anatomy.forward import compute_leadfield
    from brainforge.anatomy.head_model import region_sum
    from brainforge.anatomy.montage import Electrodes, project_to_scalp

    deepsif = load_deepsif_anatomy(folder)
    names = [n for n in deepsif.ch_names if n not in ("Nz", "TP11", "TP12")]
    surfaces = make_template_bem_surfaces()
    pos = project_to_scalp(get_electrodes(names).pos, surfaces.centre, surfaces.outer_skin, surfaces.outer_skin_tris)
    leadfield = compute_leadfield(
        deepsif.source_pos_mm, deepsif.source_nn, Electrodes(names, pos), make_template_bem(surfaces=surfaces)
    )
    ours = region_sum(leadfield, deepsif.source_region, deepsif.n_regions)
    return correlation(ours, deepsif.pick_channels(names).region_leadfield)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--montage", default="1010-64")
    parser.add_argument("--deepsif", type=Path, default=DEFAULT_DEEPSIF)
    args = parser.parse_args()

    from brainforge.anatomy import make_head_model

    bem = make_head_model(args.montage)
    rows: list[tuple[str, np.ndarray]] = []
    sphere = make_head_model(args.montage, conductor="sphere")
    rows.append(("3-shell sphere vs BEM, sources", correlation(bem.leadfield, sphere.leadfield)))
    rows.append(("3-shell sphere vs BEM, regions", correlation(bem.region_leadfield, sphere.region_leadfield)))
    skull = make_head_model(args.montage, conductivity=(0.3, 0.003, 0.3))
    rows.append(("skull 0.003 S/m vs 0.006, regions", correlation(bem.region_leadfield, skull.region_leadfield)))
    jitter = make_head_model(args.montage, electrode_jitter_mm=10.0, jitter_seed=1)
    rows.append(("electrodes jittered 10 mm, regions", correlation(bem.region_leadfield, jitter.region_leadfield)))
    if (args.deepsif / "leadfield_75_20k.mat").is_file():
        rows.append(("published DeepSIF 75x994, regions (72 ch)", deepsif_correlation(args.deepsif)))

    width = max(len(name) for name, _ in rows)
    print(f"{'comparison'.ljust(width)}  median    5%     25%")
    for name, corr in rows:
        p5, p25 = np.percentile(corr, [5, 25])
        print(f"{name.ljust(width)}  {np.median(corr):.3f}  {p5:6.3f}  {p25:6.3f}")
    print(json.dumps({name: round(float(np.median(corr)), 4) for name, corr in rows}))


if __name__ == "__main__":
    main()
