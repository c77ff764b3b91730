"""Lightning checkpoints as safetensors (tensors) plus JSON (everything else): resuming never unpickles."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import CheckpointIO

from .._cache import atomic_path
from .._errors import BrainForgeError

#: Metadata ``format`` of a resumable training state.
STATE_FORMAT = "brainforge-training-state"


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested checkpoint by a reference, collecting the tensors.

    Dicts keep non-string keys (optimizer states use ints) and tuples stay
    tuples, so :func:`unflatten_state` restores the structure exactly.
    """
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[flatten_state(k, tensors), flatten_state(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    raise BrainForgeError(f"Cannot store a {type(obj).__name__} in a training checkpoint.")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in obj["__dict__"]}
    return obj


def save_training_state(checkpoint: dict, path: str | Path) -> None:
    """Write a Lightning checkpoint dict to one safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    structure = flatten_state(checkpoint, tensors)
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={"format": STATE_FORMAT, "state": json.dumps(structure)})


def load_training_state(path: str | Path, map_location: Any = None) -> dict:
    """Read a file written by :func:`save_training_state` (one-line errors when corrupt or foreign)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise BrainForgeError(f"Training checkpoint not found: {path}.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != STATE_FORMAT:
                raise BrainForgeError(f"{path} is not a BrainForge training checkpoint.")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        structure = json.loads(metadata["state"])
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise BrainForgeError(f"Training checkpoint {path} is corrupt ({err}); delete it to start over.") from err
    if map_location is not None and not callable(map_location):
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return unflatten_state(structure, tensors)


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning ``CheckpointIO`` that stores checkpoints without pickle."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        """Save ``checkpoint`` to ``path`` (atomic)."""
        save_training_state(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        """Load a checkpoint written by :meth:`save_checkpoint`."""
        return load_training_state(path, map_location)

    def remove_checkpoint(self, path) -> None:
        """Delete a checkpoint file."""
        if os.path.exists(path):
            os.remove(path)
