"""Slow tier (``pytest -m slow``): the bundled default model on a forward model that training never used."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_default_model_and_sloreta_localize_on_a_shifted_cap(spike_library, tmp_path):
    """EEG through MNE's exact forward at a cap moved 25 mm towards the nose, solvers on the template.

    Both must beat half of chance (the median distance between two regions,
    what a random guess scores against one source) and give finite estimates
    on every sample.
    """
    from brainforge.anatomy import make_head_model
    from brainforge.evaluation.benchmark import BenchmarkConfig, run_benchmark
    from brainforge.models import default_model_dir
    from brainforge.synthesis import SampleGenerator, SynthesisConfig
    from brainforge.synthesis.store import write_test_set

    shifted = make_head_model("1010-64", cap_shift_mm=(0.0, 25.0))
    template = make_head_model("1010-64")
    assert not np.allclose(shifted.ch_pos_mm, template.ch_pos_mm)
    config = SynthesisConfig(n_sources=(1, 1), sensor_snr_db=(10.0, 20.0))
    path = tmp_path / "shift25.zarr"
    write_test_set(SampleGenerator(shifted, spike_library, config), 30, path, seed=77, progress=False)
    result = run_benchmark(
        [str(default_model_dir()), "sloreta"], [path], tmp_path / "report",
        BenchmarkConfig(n_bootstrap=50, seed=0), head=template, progress=False,
    )  # fmt: skip
    samples = result.samples
    chance = float(np.median(template.region_distance_mm))
    for solver in dict.fromkeys(samples.solver):
        mine = samples[samples.solver == solver]
        print(f"{solver}: median peak-centre error {np.median(mine.peak_centre_error_mm):.1f} mm, chance {chance:.1f}")
        assert len(mine) == 30 and not mine.failed_nonfinite.any(), solver
        assert np.median(mine.peak_centre_error_mm) < 0.5 * chance, solver
