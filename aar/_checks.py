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


def check_texts(name: str, value: object) -> list[str]:
    """``value`` (one string, or a non-empty list or tuple of strings) as a list of strings.

    Raises:
        TypeError: not a str or list/tuple, or an item that is not a str (its index and type named).
        ValueError: an empty list or tuple.
    """
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a str or a list of str, got {type(value).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} is an empty list; need at least one string")
    bad = [(i, type(t).__name__) for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name} must hold only str; item {bad[0][0]} is {bad[0][1]}")
    return list(texts)
