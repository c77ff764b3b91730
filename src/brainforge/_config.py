"""Typed configurations back from JSON, and lists of names as options give them."""

from __future__ import annotations

from dataclasses import fields

from ._errors import BrainForgeError


def config_from_dict(config_class: type, params: dict):
    """Rebuild a config dataclass from JSON (lists back to tuples, unknown keys refused)."""
    known = {f.name: f for f in fields(config_class)}
    unknown = set(params) - set(known)
    if unknown:
        raise BrainForgeError(f"Unknown {config_class.__name__} parameter(s): {', '.join(sorted(unknown))}.")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    return config_class(**values)


__all__ = ["config_from_dict"]


def split_names(values) -> list[str]:
    """Return names given as one comma-separated string, or as several such strings (repeated options).

    ``"Fp1, Fp2"`` and ``["Fp1", "Fp2"]`` give ``["Fp1", "Fp2"]``; None gives ``[]``.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
