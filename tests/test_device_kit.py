"""The GPU-machine kit (scripts/device): its archive restores every array in its own dtype, and its time budget."""

import importlib.util
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

DEVICE = Path(__file__).resolve().parents[1] / "scripts" / "device"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"device_{name}", DEVICE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_packed_entry_unpacks_to_its_dtypes_within_the_stated_errors(tmp_path, monkeypatch):
    pack, unpack = _load("pack"), _load("unpack")
    rng = np.random.default_rng(0)
    arrays = {
        "scalp_leadfield": rng.normal(size=(6, 40, 30)) * 1e-6,  # float16, scaled by its max
        "ch_pos_mm": rng.uniform(-90, 90, size=(500, 3)),  # large float64: float32
        "conductivity": np.array([0.3, 0.006, 0.3]),  # small float64: exact
        "vertex_index": rng.integers(0, 1600, size=(500, 3)),  # int64: uint16, exact
        "offsets": np.array([-5, 70000], dtype=np.int64),  # int8 and uint32 need int64: kept
        "huge": np.array([-1, 2**62 + 1], dtype=np.int64),  # NumPy's common type would be float64: kept
        "mask": np.array([True, False]),
    }
    source = tmp_path / "entry.npz"
    np.savez(source, **arrays)
    packed = pack.compact(source)
    assert len(packed) < source.stat().st_size / 2
    archive = tmp_path / "data.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        pack._add_bytes(tar, "forward_bank/entry.npz", packed)
        pack._add_bytes(tar, "manifest.json", json.dumps({"head": "x"}).encode())
    monkeypatch.setenv("BRAINFORGE_CACHE", str(tmp_path / "cache"))
    unpack.main(str(archive))
    restored = np.load(tmp_path / "cache" / "forward_bank" / "entry.npz")
    assert sorted(restored.files) == sorted(arrays)
    for key, values in arrays.items():
        assert restored[key].dtype == values.dtype, key
    leadfield = arrays["scalp_leadfield"]  # half a float16 step below 1 is 2.44e-4
    assert np.abs(restored["scalp_leadfield"] - leadfield).max() < 2.5e-4 * np.abs(leadfield).max()
    np.testing.assert_allclose(restored["ch_pos_mm"], arrays["ch_pos_mm"], rtol=6e-8)
    assert not np.array_equal(restored["ch_pos_mm"], arrays["ch_pos_mm"])  # it did travel as float32
    for key in ("conductivity", "vertex_index", "offsets", "huge", "mask"):
        np.testing.assert_array_equal(restored[key], arrays[key])
    assert (tmp_path / "cache" / "manifest.json").is_file()
    # A head model's arrays feed cache keys: packed with float32=False, every float but the leadfields is exact.
    exact = np.load(io.BytesIO(pack.compact(source, float32=False)))
    assert exact["ch_pos_mm"].dtype == np.float64 and np.array_equal(exact["ch_pos_mm"], arrays["ch_pos_mm"])


def test_arguments_file_refuses_the_options_the_kit_sets(tmp_path):
    train = _load("train")
    args = tmp_path / "args.txt"
    args.write_text("--model gru --workers 2 --out=x\n")
    with pytest.raises(SystemExit, match="drop --out, --workers; the kit sets them"):
        train.read_options(args)
    with pytest.raises(SystemExit, match="no arguments file"):
        train.read_options(tmp_path / "missing.txt")
    assert train.head_name(["--model", "gru"]) == "1010-64"
    assert train.head_name(["--head", "1010-32", "--head=my_head.npz"]) == "my_head.npz"


def test_training_argv_sets_the_time_left_and_refuses_too_little(tmp_path, monkeypatch):
    train = _load("train")
    args = tmp_path / "args.txt"
    args.write_text("# a comment\n--model cnn_transformer --lr 0.0001  # trailing comment\n--seed 51\n")
    monkeypatch.setenv("WORKERS", "3")
    argv = train.training_argv(time.time() - 10, 3700, "OUT", "HEAD.npz", str(args))
    assert argv[:8] == ["brainforge", "train", "--model", "cnn_transformer", "--lr", "0.0001", "--seed", "51"]
    assert argv[argv.index("--workers") + 1] == "3" and argv[argv.index("--accelerator") + 1] == "gpu"
    assert argv[argv.index("--head") + 1] == "HEAD.npz" and argv[argv.index("--out") + 1] == "OUT"
    assert argv[argv.index("--max-time") + 1] in ("00:01:01:30", "00:01:01:29")  # 3,690 s left
    with pytest.raises(SystemExit, match="only 50 s"):
        train.training_argv(time.time(), 50.5, "OUT", "HEAD.npz", str(args))
