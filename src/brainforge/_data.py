"""Files that ship inside the package: the bundled default model and calibration tables."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ._errors import BrainForgeError


def package_data(name: str) -> Path:
    """Return the path of ``brainforge/data/<name>`` (a file or folder installed with the package)."""
    return Path(str(files("brainforge") / "data" / name))


def default_model_dir() -> Path:
    """Return the folder of the bundled default model (a cnn_transformer trained across montages)."""
    path = package_data("default_model")
    if not (path / "model.safetensors").is_file():
        raise BrainForgeError(f"The default model is missing from {path}; reinstall BrainForge.")
    return path
