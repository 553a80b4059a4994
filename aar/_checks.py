"""Argument checks that many public entry points share."""

from __future__ import annotations


def check_positive_int(name: str, value: object, *, optional: bool = False) -> int | None:
    """Return ``value`` if it is an integer >= 1 (``None`` too when ``optional``).

    Raises:
        ValueError: anything else (a bool, a float, a string, 0, a negative number), naming
            ``name`` and the value received.
    """
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "None or a positive integer" if optional else "a positive integer"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value
