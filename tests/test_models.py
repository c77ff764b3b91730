import json

import numpy as np
import pytest
import torch

from brainforge import BrainForgeError
from brainforge.anatomy import CHANNEL_SUBSETS, get_electrodes
from brainforge.models import MODELS, build_model, load_model, load_weights, save_model
from brainforge.synthesis import normalize_eeg
from brainforge.topomap import Montage

SMALL = {
    "cnn_transformer": {"grid_size": 16, "conv_channels": (4,), "d_model": 32, "n_heads": 2, "n_layers": 1},
    "deepsif": {"hidden": 40},
    "convdip": {"n_filters": 8, "dense_units": 20},
    "gru": {"dense_units": 20, "gru_units": 8},
}
SMALL["channel_count_router"] = {"member_params": SMALL["cnn_transformer"], "sparse_max_channels": 32}


@pytest.fixture(scope="module")
def montage():
    electrodes = get_electrodes("1010-64")
    return Montage(tuple(electrodes.names), electrodes.pos)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_interface_for_all(name, montage):
    torch.manual_seed(0)
    model = build_model(name, 30, montage, **SMALL[name]).eval()
    eeg = normalize_eeg(torch.randn(2, 25, 64))
    out = model(eeg, montage)
    assert out.shape == (2, 25, 30) and torch.isfinite(out).all()
    assert model.n_parameters == sum(p.numel() for p in model.parameters()) > 0
    assert f"{model.n_parameters:,} parameters" in model.summary()
    # Channels given in another order give the same answer.
    order = np.random.default_rng(0).permutation(64)
    shuffled = model(eeg[..., order], montage.pick(order))
    torch.testing.assert_close(shuffled, out, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_folding_batch_norm_keeps_the_output(name, montage):
    from brainforge.models.base import inference_copy

    torch.manual_seed(1)
    model = build_model(name, 30, montage, **SMALL[name])
    # Give the normalizations statistics of their own, as training does.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.eval()
    folded = inference_copy(model)
    eeg = normalize_eeg(torch.randn(3, 20, 64))
    with torch.inference_mode():
        torch.testing.assert_close(folded(eeg, montage), model(eeg, montage), atol=1e-5, rtol=1e-4)

    def n_norms(m):
        return sum(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in m.modules())

    assert n_norms(folded) == 0 and (n_norms(model) > 0) == (name in ("cnn_transformer", "channel_count_router"))
    assert model.training is False and n_norms(model) == n_norms(build_model(name, 30, montage, **SMALL[name]))


def test_published_defaults():
    electrodes = get_electrodes("1010-75")
    montage75 = Montage(tuple(electrodes.names), electrodes.pos)
    deepsif = build_model("deepsif", 994, montage75)
    # 75->75->75 with residual, 75->500->500 + skip, 500 value layer, 3-layer LSTM 500->994.
    assert deepsif.spatial.fc21.out_features == 500 and deepsif.spatial.fc23.in_features == 75
    assert deepsif.temporal.num_layers == 3 and deepsif.temporal.hidden_size == 994
    lstm = sum(p.numel() for p in deepsif.temporal.parameters())
    assert lstm == 4 * (994 * (500 + 994) + 2 * 994) + 2 * 4 * (994 * (994 + 994) + 2 * 994)
    convdip = build_model("convdip", 994, montage75)
    assert convdip.cnn[0].out_channels == 64 and convdip.dense[1].out_features == 200
    gru = build_model("gru", 994, montage75)
    assert gru.gru1.hidden_size == 32 and gru.gru1.bidirectional and gru.gru2.bidirectional


def test_map_models_take_any_montage_fixed_ones_refuse(montage):
    electrodes = get_electrodes("1010-16")
    montage16 = Montage(tuple(electrodes.names), electrodes.pos)
    eeg16 = torch.randn(1, 10, 16)
    for name in ("cnn_transformer", "convdip"):
        out = build_model(name, 30, montage, **SMALL[name]).eval()(eeg16, montage16)
        assert out.shape == (1, 10, 30)
    for name in ("deepsif", "gru"):
        with pytest.raises(BrainForgeError, match=r"fixed channels.*lacks"):
            build_model(name, 30, montage, **SMALL[name])(eeg16, montage16)
    with pytest.raises(BrainForgeError, match="channels but the montage"):
        build_model("gru", 30, montage, **SMALL["gru"])(torch.randn(1, 10, 63), montage)
    with pytest.raises(BrainForgeError, match="Unknown model"):
        build_model("resnet", 30, montage)
    with pytest.raises(BrainForgeError, match="Unknown CNNTransformerConfig"):
        build_model("cnn_transformer", 30, montage, n_layer=2)


def test_fixed_model_picks_its_channels_from_a_larger_montage():
    electrodes = get_electrodes("1010-75")
    montage75 = Montage(tuple(electrodes.names), electrodes.pos)
    index = [electrodes.names.index(n) for n in CHANNEL_SUBSETS["1010-64"]]
    model = build_model("gru", 20, montage75.pick(index), **SMALL["gru"]).eval()
    eeg75 = normalize_eeg(torch.randn(1, 12, 75))
    expected = model(normalize_eeg(eeg75[..., index]))
    torch.testing.assert_close(model(eeg75, montage75), expected)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_checkpoint_round_trip(name, montage, tmp_path):
    torch.manual_seed(1)
    model = build_model(name, 30, montage, **SMALL[name]).eval()
    save_model(model, tmp_path / "m", {"metrics": {"val_peak_patch_error_mm": 12.5}})
    loaded, config = load_model(tmp_path / "m")
    eeg = normalize_eeg(torch.randn(2, 9, 64))
    torch.testing.assert_close(loaded(eeg), model(eeg))
    assert config["model"]["name"] == name and config["metrics"]["val_peak_patch_error_mm"] == 12.5
    assert config["montage"]["ch_names"] == list(montage.ch_names)
    # safetensors holds plain tensors: nothing to unpickle.
    assert (tmp_path / "m" / "model.safetensors").read_bytes()[8:9] == b"{"


def test_corrupt_or_foreign_checkpoints_give_one_line_errors(montage, tmp_path):
    model = build_model("gru", 30, montage, **SMALL["gru"])
    good = save_model(model, tmp_path / "good")
    with pytest.raises(BrainForgeError, match="not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrainForgeError, match=r"no config\.json"):
        load_model(tmp_path / "empty")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text((good / "config.json").read_text())
    (corrupt / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:200])
    with pytest.raises(BrainForgeError, match="corrupt") as err:
        load_model(corrupt)
    assert "\n" not in str(err.value)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(BrainForgeError, match="not a BrainForge model config"):
        load_model(foreign)
    (foreign / "config.json").write_text("{not json")
    with pytest.raises(BrainForgeError, match="not JSON"):
        load_model(foreign)
    # Weights of another architecture under a valid config.
    other = save_model(build_model("gru", 31, montage, **SMALL["gru"]), tmp_path / "other")
    (other / "config.json").write_text((good / "config.json").read_text())
    with pytest.raises(BrainForgeError, match="do not fit"):
        load_model(other)
    # A valid config edited by hand: each damage is named on one line.
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    config = json.loads((good / "config.json").read_text())
    damages = [
        ({"model": {"name": "resnet", "params": {}}}, "names an unknown model 'resnet'"),
        ({"model": {"name": "gru"}}, "lacks the field 'params'"),
        ({"format_version": "1"}, "format_version '1' is not an integer"),
        ({"format_version": 99}, "needs a newer BrainForge"),
        ({"data": {**config.get("data", {}), "sfreq_hz": None}}, "data.sfreq_hz None is not a sampling rate"),
        ({"n_regions": "30"}, "n_regions '30' is not a positive integer"),
        ({"montage": {**config["montage"], "ch_names": "Fp1"}}, "montage.ch_names is not a list of channel names"),
        ({"montage": {**config["montage"], "ch_pos_mm": [[0, 0]]}}, r"montage.ch_pos_mm is not \d+ positions of 3"),
        ({"head_model": "template"}, "head_model is not a mapping"),
    ]
    for change, message in damages:
        (edited / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(BrainForgeError, match=message) as err:
            load_model(edited)
        assert "\n" not in str(err.value)


def test_fine_tuning_keeps_what_fits(montage, tmp_path):
    source = build_model("cnn_transformer", 30, montage, **SMALL["cnn_transformer"])
    save_model(source, tmp_path / "generic")
    target = build_model("cnn_transformer", 45, montage, **SMALL["cnn_transformer"])
    skipped = load_weights(target, tmp_path / "generic")
    assert skipped == ["head.bias", "head.weight"]
    torch.testing.assert_close(target.embed.weight, source.embed.weight)
    with pytest.raises(BrainForgeError, match="holds a cnn_transformer model"):
        load_weights(build_model("gru", 30, montage, **SMALL["gru"]), tmp_path / "generic")


@pytest.mark.parametrize("samples_per_token", [1, 10])
def test_cnn_transformer_mixes_time(samples_per_token, montage):
    """Changing one time sample changes the output at tokens far from it (attention), not only its own."""
    torch.manual_seed(0)
    params = {**SMALL["cnn_transformer"], "samples_per_token": samples_per_token}
    model = build_model("cnn_transformer", 30, montage, **params).eval()
    eeg = normalize_eeg(torch.randn(1, 255, 64))  # not a multiple of 10: padded, then cut
    changed = eeg.clone()
    changed[0, 3, 10] += 0.5  # one channel: a constant over channels is referenced away
    with torch.no_grad():
        out, out_changed = model(eeg, montage), model(changed, montage)
    assert out.shape == (1, 255, 30)
    difference = (out - out_changed).abs().amax(dim=2)[0]
    assert difference[200:].min() > 1e-6  # 20 or more tokens away
    # The same network without its Transformer: the far outputs cannot change.
    local = build_model("cnn_transformer", 30, montage, **params).eval()
    local.transformer = torch.nn.Identity()
    with torch.no_grad():
        far = (local(eeg, montage) - local(changed, montage)).abs().amax(dim=2)[0]
    assert far[200:].max() == 0 and far[3] > 0


def test_cnn_transformer_groups_samples_into_tokens(montage):
    model = build_model("cnn_transformer", 30, montage, **{**SMALL["cnn_transformer"], "samples_per_token": 10})
    assert model.cnn[0][0].in_channels == 11  # 10 maps + the head mask
    assert model.head.out_features == 300
    with pytest.raises(BrainForgeError, match="samples_per_token"):
        build_model("cnn_transformer", 30, montage, samples_per_token=0)


@pytest.mark.parametrize("sigma", [3.0, 1.1])
def test_output_smoothing_is_a_gaussian_low_pass_without_weights(sigma, montage):
    """output_smoothing_samples is a Gaussian along time (as SciPy's, edges nearest) and adds no weights."""
    from scipy.ndimage import gaussian_filter1d

    torch.manual_seed(4)
    params = {**SMALL["cnn_transformer"], "samples_per_token": 10}
    plain = build_model("cnn_transformer", 30, montage, **params).eval()
    smooth = build_model("cnn_transformer", 30, montage, **params, output_smoothing_samples=sigma).eval()
    assert smooth.state_dict().keys() == plain.state_dict().keys()  # trained models load with it set
    smooth.load_state_dict(plain.state_dict())
    eeg = normalize_eeg(torch.randn(2, 203, 64))  # not a multiple of 10: the padding is cut before smoothing
    with torch.no_grad():
        raw, smoothed = plain(eeg, montage).numpy(), smooth(eeg, montage).numpy()
    expected = gaussian_filter1d(raw.astype(float), sigma, axis=1, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(smoothed, expected, atol=1e-5)
    spectrum = np.abs(np.fft.rfft(raw, axis=1)) ** 2, np.abs(np.fft.rfft(smoothed, axis=1)) ** 2
    high = np.fft.rfftfreq(203, 1 / 500) > 100  # Hz, at 500 samples/s
    assert spectrum[1][:, high].sum() < 0.1 * spectrum[0][:, high].sum()
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(BrainForgeError, match="output_smoothing_samples"):
            build_model("cnn_transformer", 30, montage, output_smoothing_samples=bad)


@pytest.mark.parametrize("n_times", [1, 4, 37])
@pytest.mark.parametrize("kernel", ["gaussian", "uneven", "even"])
def test_smooth_time_gradient_is_that_of_the_convolution(n_times, kernel):
    """smooth_time's hand-written backward equals the gradient of the smoothing (edges replicated), by gradcheck.

    Series shorter than the kernel's radius (6 samples at 2) fold several
    padded taps onto the same edge sample; uneven and even-length kernels
    catch a backward that flips the kernel, which a symmetric one cannot.
    """
    from brainforge.models.cnn_transformer import gaussian_weights, smooth_time

    weights = {"gaussian": gaussian_weights(2.0), "uneven": (0.1, 0.2, 0.7), "even": (0.3, 0.1, 0.4, 0.2)}[kernel]
    activity = torch.randn(2, n_times, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: smooth_time(x, weights), (activity,))
    # The same values as the explicit convolution matrix (replicated edges), and so the same gradient,
    # also for an incoming gradient that is broadcast (what a sum gives).
    half = len(weights) // 2
    matrix = torch.zeros(n_times, n_times, dtype=torch.float64)
    for t in range(n_times):
        for offset, weight in enumerate(weights):
            matrix[t, min(max(t + offset - half, 0), n_times - 1)] += weight
    torch.testing.assert_close(smooth_time(activity, weights), torch.einsum("st,btr->bsr", matrix, activity))
    (gradient,) = torch.autograd.grad(smooth_time(activity, weights).sum(), activity)
    torch.testing.assert_close(gradient, matrix.sum(dim=0).reshape(1, -1, 1).expand(2, n_times, 3))


def test_head_hidden_starts_as_the_linear_head_and_leaves_its_subspace(montage, tmp_path):
    """head_hidden adds an output path that starts at zero (fine-tuning keeps the outputs) and is not rank-bound.

    A linear head maps d_model features to regions, so every output map lies
    in one (d_model + 1)-dimensional affine subspace; the second path's maps do not.
    """
    torch.manual_seed(5)
    params = {**SMALL["cnn_transformer"], "d_model": 8, "n_heads": 2, "samples_per_token": 1}
    plain = build_model("cnn_transformer", 60, montage, **params).eval()
    save_model(plain, tmp_path / "plain")
    wide = build_model("cnn_transformer", 60, montage, **params, head_hidden=32).eval()
    skipped = load_weights(wide, tmp_path / "plain")
    assert skipped == ["head_mlp.0.bias", "head_mlp.0.weight", "head_mlp.2.bias", "head_mlp.2.weight"]
    eeg = normalize_eeg(torch.randn(3, 40, 64))
    with torch.no_grad():
        torch.testing.assert_close(wide(eeg, montage), plain(eeg, montage))
        torch.nn.init.normal_(wide.head_mlp[-1].weight)  # as training would move it off zero
        ranks = {}
        for name, model in (("plain", plain), ("wide", wide)):
            maps = model(eeg, montage).reshape(-1, 60)  # 120 maps of 60 regions
            ranks[name] = torch.linalg.matrix_rank(maps - maps.mean(dim=0), rtol=1e-5).item()
    assert ranks["plain"] <= 8 < 20 <= ranks["wide"]
    with pytest.raises(BrainForgeError, match="head_hidden"):
        build_model("cnn_transformer", 60, montage, head_hidden=-1)


def test_bundled_default_smooths_its_output():
    """The shipped config sets the 2-sample low-pass, and the deployed copy keeps it."""
    from brainforge._data import default_model_dir
    from brainforge.models.base import inference_copy

    model, _ = load_model(default_model_dir())
    assert model.config.output_smoothing_samples == 2.0
    deployed = inference_copy(model)
    torch.testing.assert_close(deployed.smoothing_weights, model.smoothing_weights)
    assert len(model.smoothing_weights) == 13 and abs(sum(model.smoothing_weights) - 1) < 1e-6


def test_mask_channel_response_is_added_not_stacked(montage):
    """The CNN-Transformer's first convolution sees the head mask as one broadcast map: same as stacking it."""
    from brainforge.topomap import make_topomap

    torch.manual_seed(3)
    model = build_model("cnn_transformer", 30, montage, **SMALL["cnn_transformer"], samples_per_token=5).eval()
    eeg = normalize_eeg(torch.randn(2, 20, 64))
    size, k = model.config.grid_size, 5
    with torch.inference_mode():
        maps = make_topomap(montage, model.config.interpolation, size)(eeg).reshape(-1, k, size, size)
        mask = make_topomap(montage, model.config.interpolation, size).mask.float()
        stacked = torch.cat([maps, mask.expand(len(maps), 1, size, size)], dim=1)
        torch.testing.assert_close(model.features(eeg, montage), model.cnn(stacked).flatten(1), atol=1e-6, rtol=1e-5)


def test_normalize_eeg_is_one_definition_for_arrays_and_tensors():
    """NumPy and PyTorch give the same normalization; each segment of a batch gets its own scale."""
    rng = np.random.default_rng(0)
    eeg = rng.normal(size=(3, 40, 8)) * np.array([1.0, 10.0, 100.0])[:, None, None] + 5.0
    array, scale = normalize_eeg(eeg, return_scale=True)
    tensor, tensor_scale = normalize_eeg(torch.from_numpy(eeg), return_scale=True)
    assert array.dtype == np.float32 and scale.shape == (3,)
    np.testing.assert_allclose(array, tensor.numpy(), atol=1e-6)
    np.testing.assert_allclose(scale, tensor_scale.numpy())
    np.testing.assert_allclose(np.abs(array).max(axis=(1, 2)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(array.mean(axis=2), 0.0, atol=1e-6)  # average reference
    np.testing.assert_allclose(normalize_eeg(eeg[1]), array[1], atol=1e-6)  # one segment as in a batch
    assert np.all(normalize_eeg(np.ones((10, 4))) == 0.0)  # a flat segment: zeros, not NaN


def test_channel_count_router_sends_each_montage_to_one_member(montage, tmp_path):
    from brainforge.models import ChannelCountRouter, combine_by_channel_count

    torch.manual_seed(3)
    dense = build_model("cnn_transformer", 30, montage, **SMALL["cnn_transformer"]).eval()
    sparse = build_model("cnn_transformer", 30, montage, **SMALL["cnn_transformer"]).eval()
    router = combine_by_channel_count(dense, sparse, sparse_max_channels=20)
    assert isinstance(router, ChannelCountRouter) and not router.training
    assert router.n_parameters == dense.n_parameters + sparse.n_parameters
    eeg = normalize_eeg(torch.randn(2, 20, 64))
    with torch.inference_mode():
        for n_channels, member in ((64, dense), (21, dense), (20, sparse), (16, sparse)):
            index = np.arange(0, 64, 64 / n_channels).astype(int)[:n_channels]
            subset, subset_montage = normalize_eeg(eeg[..., index]), montage.pick(index)
            out = router(subset, subset_montage)
            torch.testing.assert_close(out, member(subset, subset_montage), atol=0, rtol=0)
            other = sparse if member is dense else dense
            assert not torch.allclose(out, other(subset, subset_montage))  # the members differ
        torch.testing.assert_close(router(eeg), dense(eeg), atol=0, rtol=0)  # no montage: the training one
    save_model(router, tmp_path / "router")
    loaded, config = load_model(tmp_path / "router")
    assert config["model"]["params"]["sparse_max_channels"] == 20
    assert loaded.config == router.config  # the member's parameters survive JSON (tuples, defaults)
    with pytest.raises(BrainForgeError, match="holds two networks"):
        load_weights(build_model("cnn_transformer", 30, montage, **SMALL["cnn_transformer"]), tmp_path / "router")
    with torch.inference_mode():
        index = np.arange(16)
        subset = normalize_eeg(eeg[..., index])
        torch.testing.assert_close(loaded(subset, montage.pick(index)), sparse(subset, montage.pick(index)))
    # LearnedSolver picks the member by the recording's channel count, then upsamples for that member.
    from brainforge.inverse.solvers import _member_for, _upsamples

    assert _member_for(router, montage.pick(np.arange(16))) is router.sparse
    assert _member_for(router, montage) is router.dense and _member_for(dense, montage) is dense
    assert _upsamples(dense, 16) and not _upsamples(dense, 64)


def test_channel_count_router_refuses_unlike_members(montage):
    from brainforge.models import combine_by_channel_count

    small = build_model("cnn_transformer", 30, montage, **SMALL["cnn_transformer"])
    with pytest.raises(BrainForgeError, match="number of regions"):
        combine_by_channel_count(small, build_model("cnn_transformer", 31, montage, **SMALL["cnn_transformer"]))
    with pytest.raises(BrainForgeError, match="hyper-parameters"):
        wider = {**SMALL["cnn_transformer"], "d_model": 64}
        combine_by_channel_count(small, build_model("cnn_transformer", 30, montage, **wider))
    with pytest.raises(BrainForgeError, match="network"):
        combine_by_channel_count(small, build_model("convdip", 30, montage, **SMALL["convdip"]))
    with pytest.raises(BrainForgeError, match="take any montage"):
        build_model("channel_count_router", 30, montage, member="gru", member_params=SMALL["gru"])
    with pytest.raises(BrainForgeError, match="Unknown CNNTransformerConfig parameter"):
        build_model("channel_count_router", 30, montage, member_params={"n_layer": 2})
    with pytest.raises(BrainForgeError, match="at least 1"):
        build_model("channel_count_router", 30, montage, member_params=SMALL["cnn_transformer"], sparse_max_channels=0)


def test_training_input_ignores_head_options_left_at_their_default():
    """A model saved before an unmoved-cap option existed reads the same input as one saved after."""
    from brainforge.models.io import training_input

    head = {"montage": "1010-64", "cap_shift_mm": [0.0, 0.0]}
    before = {"head_model": {"config": head}, "data": {"sfreq_hz": 500.0, "segment_samples": 500}}
    after = {"head_model": {"config": {**head, "cap_vertical_shift_mm": 0.0}}, "data": before["data"]}
    assert training_input(before) == training_input(after)
    lowered = {"head_model": {"config": {**head, "cap_vertical_shift_mm": -25.0}}, "data": before["data"]}
    assert training_input(lowered) != training_input(before)
