"""Scoring on EEG from DeepSIF's published leadfield (another head model and parcellation)."""

import numpy as np
import pytest

from brainforge._errors import BrainForgeError


def test_cross_distance_is_the_distance_between_centres():
    from brainforge.evaluation.reference_head import cross_distance_mm

    ours = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    reference = np.array([[0.0, 3.0, 4.0], [10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(cross_distance_mm(ours, reference), [[5.0, 10.0, 0.0], [np.sqrt(125), 0.0, 10.0]])


def test_default_beats_sloreta_on_the_reference_leadfield(deepsif_dir, head64, spike_library, tmp_path):
    """On EEG from another group's head model, positions are compared across parcellations."""
    from brainforge.evaluation.reference_head import score_on_reference_head, write_reference_head_test_set
    from brainforge.synthesis.store import read_test_set

    path = write_reference_head_test_set(deepsif_dir, tmp_path, 24, seed=4000)
    test = read_test_set(path)
    assert test.metadata["ch_names"] == list(head64.ch_names)
    assert len(test.metadata["region_centres_mm"]) == 994  # the reference's own parcellation
    assert write_reference_head_test_set(deepsif_dir, tmp_path, 24, seed=4000) == path  # reused
    with pytest.raises(BrainForgeError, match="24 samples, not 30"):
        write_reference_head_test_set(deepsif_dir, tmp_path, 30, seed=4000)  # never reused for other settings
    samples = score_on_reference_head(["default", "sloreta"], path, head64)
    assert set(samples.n_channels) == {64, 16} and len(samples) == 4 * 24
    # No estimate can come closer to a true centre than our region nearest to it.
    assert (samples.peak_centre_error_mm >= samples.centre_floor_mm - 1e-9).all()
    assert (samples.peak_patch_error_mm <= samples.peak_centre_error_mm + 1e-9).all()
    assert samples.centre_floor_mm.median() < 5.0  # both parcellations tile the same fsaverage5 cortex
    at_64 = samples[samples.n_channels == 64].groupby("solver").peak_centre_error_mm.median()
    assert at_64["default"] < at_64["sloreta"]
    assert at_64["default"] < 25.0


def test_reference_head_errors(deepsif_dir, head64, tmp_path):
    from brainforge.evaluation.reference_head import score_on_reference_head, write_reference_head_test_set

    with pytest.raises(BrainForgeError, match=r"lacks .* channels of biosemi128"):
        write_reference_head_test_set(deepsif_dir, tmp_path, 2, montage="biosemi128")
    path = write_reference_head_test_set(deepsif_dir, tmp_path, 2, seed=1)
    with pytest.raises(BrainForgeError, match="lacks channels of the test set"):
        score_on_reference_head(["sloreta"], path, head64.pick_channels(head64.ch_names[:32]))
    with pytest.raises(BrainForgeError, match="share a label"):
        score_on_reference_head(["sloreta", "sLORETA"], path, head64)
