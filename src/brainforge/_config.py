"""Typed configurations back from JSON."""

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
