"""Probe how well a patch's *centre* can be told from the patch at all: idealized estimators on training's patches.

Usage: BRAINFORGE_CACHE=... python scripts/centre_identifiability_probe.py [N_PATCHES] [SEED]

Patches are drawn as ``SampleGenerator`` draws them (a cortical centre chosen
uniformly, ``grow_patch`` with the default ``max_patch_regions``, amplitudes
``patch_weights`` with a half-amplitude distance drawn from the default
``half_amplitude_mm``), one patch at a time, on the template head (64 channels).
For each patch, the distance from the true centre to the region that each
idealized estimator names (the peak-centre error of that estimator):

- ``true map argmax``: the largest region of the true source map (0 by
  construction: the weights peak at the centre);
- ``support centroid``: the region nearest the centroid of the patch's
  regions, weighted by their true amplitudes: what an estimate that recovers
  the patch's extent exactly, but not the slow amplitude fall-off within it,
  can give;
- ``interior nearest the centroid``: the same, among the patch's interior
  regions only (all neighbours inside the patch; ``grow_patch`` always takes
  a lone patch's first ring whole, so the centre is one of them; beside other
  patches, as in training's 2-3-patch samples, the ring can be cut);
- ``template scan``: the noise-free EEG of the patch on the template forward
  (average reference) matched against every candidate centre's isotropic patch
  (the regions within 10, 15 or 20 mm, weighted by the same Gaussian fall-off
  at a fixed 50 mm half amplitude), the best absolute correlation over
  centres and radii: a simple matched scan with the exact forward model and
  no noise (not an optimal estimator: the templates are isotropic);
- ``template scan, white noise at S dB``: the same with white sensor noise at
  sensor SNR S (power ratio over channels; training's noise is background
  activity and coloured sensor noise, so this is only indicative).

Prints the median, mean, share on the centre and share within 8 mm for each.
"""

from __future__ import annotations

import sys

import numpy as np


def isotropic_topographies(leadfield, distance_mm, radii_mm, half_amplitude_mm: float = 50.0) -> np.ndarray:
    """Unit-norm topographies (channels, radii x regions) of isotropic patches, in ``leadfield``'s reference."""
    from brainforge.synthesis.patches import patch_weights

    columns = []
    for radius in radii_mm:
        weights = np.where(distance_mm <= radius, patch_weights(distance_mm, half_amplitude_mm), 0.0)
        columns.append(leadfield @ weights.T)  # (channels, regions): centre c's patch in column c
    topographies = np.concatenate(columns, axis=1)
    return topographies / np.linalg.norm(topographies, axis=0)


def summary(name: str, errors: np.ndarray) -> str:
    """One Markdown table row."""
    return (
        f"| {name} | {np.median(errors):.1f} | {errors.mean():.1f} | {np.mean(errors == 0):.2f} "
        f"| {np.mean(errors <= 8):.2f} |"
    )


def main(n_patches: int, seed: int) -> None:
    """Draw the patches and print the table."""
    from brainforge import set_log_level
    from brainforge.anatomy import make_head_model
    from brainforge.synthesis.config import SynthesisConfig
    from brainforge.synthesis.patches import grow_patch, patch_weights

    set_log_level("warning")
    config = SynthesisConfig()
    head = make_head_model("1010-64").average_reference()  # topographies and EEG alike
    distance_mm = head.region_distance_mm
    centres_mm = head.region_centres_mm
    adjacency = head.region_adjacency.astype(np.float64).tocsr()
    leadfield = head.region_leadfield
    radii_mm = (10.0, 15.0, 20.0)
    scan = isotropic_topographies(leadfield, distance_mm, radii_mm)
    n_regions = head.n_regions
    cortical = np.flatnonzero(~head.region_is_deep)
    rng = np.random.default_rng(seed)
    snrs_db = (20.0, 10.0, 5.0)
    names = ("true map argmax", "support centroid", "interior nearest the centroid", "template scan")
    errors: dict[str, list[float]] = {name: [] for name in names}
    errors.update({f"template scan, white noise at {snr:g} dB": [] for snr in snrs_db})
    sizes = []
    for _ in range(n_patches):
        centre = int(cortical[rng.integers(len(cortical))])
        patch = grow_patch(adjacency, centres_mm, centre, rng, max_regions=config.max_patch_regions)
        weights = patch_weights(distance_mm[centre, patch], rng.uniform(*config.half_amplitude_mm))
        sizes.append(len(patch))
        source = np.zeros(n_regions)
        source[patch] = weights
        errors["true map argmax"].append(distance_mm[centre, int(source.argmax())])
        centroid = weights @ centres_mm[patch] / weights.sum()
        nearest = int(np.linalg.norm(centres_mm - centroid, axis=1).argmin())
        errors["support centroid"].append(distance_mm[centre, nearest])
        inside = np.zeros(n_regions, bool)
        inside[patch] = True
        interior = [r for r in patch if inside[adjacency.indices[adjacency.indptr[r] : adjacency.indptr[r + 1]]].all()]
        closest = min(interior, key=lambda r: np.linalg.norm(centres_mm[r] - centroid))
        errors["interior nearest the centroid"].append(distance_mm[centre, closest])
        eeg = leadfield @ source
        for snr in (None, *snrs_db):
            measured = eeg
            name = "template scan"
            if snr is not None:
                noise = rng.standard_normal(eeg.shape)
                noise *= np.sqrt(np.mean(eeg**2) / np.mean(noise**2) / 10 ** (snr / 10))
                measured = eeg + noise - noise.mean()
                name = f"template scan, white noise at {snr:g} dB"
            best = int(np.abs(scan.T @ measured).argmax()) % n_regions
            errors[name].append(distance_mm[centre, best])
    print(f"{n_patches} patches (seed {seed}), {np.median(sizes):.0f} regions (median), template head, 64 channels")
    print("| estimator | median, mm | mean, mm | on the centre | within 8 mm |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in errors.items():
        print(summary(name, np.asarray(values)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
