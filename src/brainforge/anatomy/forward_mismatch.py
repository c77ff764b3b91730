"""The forward-mismatch grammar: ``skull:S_PER_M``, ``jitter:MM[@SEED]``, ``shift:MM[@DEG]``, ``lower:MM``, ``sphere``.

A test set made on an altered head model records the alteration as
:func:`~brainforge.anatomy.make_head_model` options; :func:`parse_forward_mismatch`
turns the command-line text into those options and :func:`forward_mismatch_label`
turns them back into the short name the benchmark reports.
"""

from __future__ import annotations

import numpy as np

from .._errors import BrainForgeError, check_seed

GRAMMAR = "skull:S_PER_M, jitter:MM[@SEED], shift:MM[@DEG], lower:MM or sphere"


def parse_forward_mismatch(text: str) -> dict:
    """Return the :func:`make_head_model` options a forward-mismatch text asks for.

    Parameters
    ----------
    text : str
        ``skull:S_PER_M`` (skull conductivity, default 0.003), ``jitter:MM[@SEED]``
        (electrode jitter, default 5, its directions drawn with seed SEED,
        default 0), ``shift:MM[@DEG]`` (the whole cap moved MM along the scalp,
        default 15, towards DEG degrees, 90 = the nose),
        ``lower:MM`` (the whole cap moved MM down the head, default 20; negative: up)
        or ``sphere`` (a 3-shell sphere instead of the BEM).

    Returns
    -------
    options : dict
        Keyword arguments of :func:`~brainforge.anatomy.make_head_model`.
    """
    kind, _, value = text.partition(":")
    try:
        if kind == "skull":
            return {"conductivity": (0.3, float(value or 0.003), 0.3)}
        if kind == "jitter":
            distance, at, seed = value.partition("@")
            options = {"electrode_jitter_mm": float(distance or 5.0)}
            if not at:
                return options
            return {**options, "jitter_seed": check_seed(int(seed), "--forward-mismatch jitter seed")}
        if kind == "sphere" and not value:
            return {"conductor": "sphere"}
        if kind == "shift":
            distance, _, angle = value.partition("@")
            radians = np.deg2rad(float(angle or 90.0))
            shift = float(distance or 15.0)
            return {"cap_shift_mm": (round(shift * np.cos(radians), 6), round(shift * np.sin(radians), 6))}
        if kind == "lower" and np.isfinite(float(value or 20.0)):
            return {"cap_vertical_shift_mm": -float(value or 20.0)}
    except BrainForgeError:
        raise
    except ValueError:
        pass
    raise BrainForgeError(f"--forward-mismatch must be {GRAMMAR}, got {text!r}.")


def forward_mismatch_label(options: dict | None) -> str:
    """Short name of head-model options relative to the template (``matched`` when unaltered).

    The inverse of :func:`parse_forward_mismatch`, except that a shift is named by its distance only
    and a jitter without its seed (sets that differ only there are pooled under one name).
    """
    if not options:
        return "matched"
    parts = []
    for key, value in options.items():
        if key == "conductivity":
            parts.append(f"skull:{value[1]:g}")
        elif key == "electrode_jitter_mm":
            parts.append(f"jitter:{value:g}")
        elif key == "jitter_seed":
            continue
        elif key == "cap_shift_mm":
            parts.append(f"shift:{float(np.hypot(*value)):g}")
        elif key == "cap_vertical_shift_mm":
            parts.append(f"lower:{-float(value):g}")
        elif key == "conductor":
            parts.append(str(value))
        else:
            parts.append(f"{key}:{value}")
    return ",".join(parts)
