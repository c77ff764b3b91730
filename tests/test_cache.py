from pathlib import Path

import numpy as np
import pytest

from brainforge import _cache
from brainforge._cache import atomic_path, cached, durable_replace, get_cache_dir, hash_inputs


def test_hash_is_stable_and_sensitive():
    a = np.arange(6.0).reshape(2, 3)
    assert hash_inputs("x", a, 1.0, [1, 2]) == hash_inputs("x", a.copy(), 1.0, [1, 2])
    assert hash_inputs("x", a) != hash_inputs("x", a + 1e-12)
    assert hash_inputs("x", a) != hash_inputs("x", a.astype(np.float32))
    assert hash_inputs("x", a) != hash_inputs("x", a.reshape(3, 2))
    assert hash_inputs({"a": 1, "b": 2}) == hash_inputs({"b": 2, "a": 1})


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINFORGE_CACHE", str(tmp_path / "c"))
    assert get_cache_dir() == tmp_path / "c"
    assert (tmp_path / "c").is_dir()


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "out.npy"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        np.save(tmp, np.ones(3))
        raise RuntimeError("interrupted")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []
    # What checkpoints rely on: a failed write leaves the previous file whole.
    np.save(dest, np.arange(3))
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        np.save(tmp, np.ones(5))
        raise RuntimeError("interrupted")
    np.testing.assert_array_equal(np.load(dest), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]


def test_a_durable_rename_flushes_every_file_and_folder_first_and_its_new_parent_after(tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(_cache, "_fsync", lambda path, directory: events.append(("fsync", path)))
    real_replace = _cache.os.replace
    monkeypatch.setattr(_cache.os, "replace", lambda a, b: (events.append(("replace", b)), real_replace(a, b)))
    tree = tmp_path / ".tree.partial"
    (tree / "arrays" / "eeg").mkdir(parents=True)
    for name in ("zarr.json", "arrays/eeg/c0", "arrays/eeg/c1"):
        (tree / name).write_bytes(b"x")
    (tree / "elsewhere").symlink_to(tmp_path / "missing")  # a link is renamed with the tree, not flushed
    (tmp_path / "sets").mkdir()
    durable_replace(tree, tmp_path / "sets" / "tree")
    flushed = {path.relative_to(tree) for kind, path in events[:-2]}
    assert flushed == {Path("."), Path("arrays"), Path("arrays/eeg"), Path("zarr.json"), Path("arrays/eeg/c0"),
                       Path("arrays/eeg/c1")}  # fmt: skip
    assert events[-2:] == [("replace", tmp_path / "sets" / "tree"), ("fsync", tmp_path / "sets")]
    assert (tmp_path / "sets" / "tree" / "arrays" / "eeg" / "c1").read_bytes() == b"x"
    assert (tmp_path / "sets" / "tree" / "elsewhere").is_symlink()
    # A file through atomic_path, with the real fsync.
    monkeypatch.undo()
    with atomic_path(tmp_path / "one.txt") as tmp:
        tmp.write_text("whole")
    assert (tmp_path / "one.txt").read_text() == "whole"


def test_cached_builds_once_then_loads(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return np.arange(4)

    def save(obj, p):
        np.save(p, obj)

    def load(p):
        return np.load(p)

    path = tmp_path / "entry.npy"
    first = cached(path, build, save, load)
    second = cached(path, build, save, load)
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1


def test_corrupt_entry_is_rebuilt(tmp_path):
    path = tmp_path / "entry.npy"
    path.write_bytes(b"not a numpy file")

    result = cached(path, lambda: np.arange(3), lambda o, p: np.save(p, o), lambda p: np.load(p))
    np.testing.assert_array_equal(result, np.arange(3))
    np.testing.assert_array_equal(np.load(path), np.arange(3))


def test_fresh_build_equals_cache_hit_when_the_format_loses_precision(tmp_path):
    path = tmp_path / "entry.npy"
    values = np.array([1.0 / 3.0, np.pi])

    def lossy_save(obj, p):
        np.save(p, obj.astype(np.float32))

    first = cached(path, lambda: values, lossy_save, np.load)
    second = cached(path, lambda: values, lossy_save, np.load)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32
