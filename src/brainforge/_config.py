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
    wrong = [
        f"{name}={value!r} (not {known[name].type})"
        for name, value in params.items()
        if not has_plain_type(value, known[name].type)
    ]
    if wrong:
        raise BrainForgeError(f"Wrong {config_class.__name__} parameter type(s): {', '.join(wrong)}.")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    try:
        return config_class(**values)
    except BrainForgeError:  # the class's own one-line checks
        raise
    except (ValueError, TypeError, ZeroDivisionError, AssertionError) as err:
        reason = " ".join(str(err).split()).rstrip(".") or type(err).__name__
        raise BrainForgeError(f"{config_class.__name__} parameter(s) {params}: {reason}.") from err


#: Checks for the plain field annotations; other annotations (unions, tuples) are left to the class.
_PLAIN_TYPES = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}


def has_plain_type(value, annotation) -> bool:
    """Whether ``value`` fits a field annotated ``annotation`` (a string under postponed annotations)."""
    check = _PLAIN_TYPES.get(annotation if isinstance(annotation, str) else getattr(annotation, "__name__", ""))
    return check is None or check(value)


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
