"""Option checking in one style: every message names the key as the user writes it in a study
config (`calibrate.starts`, `drug.parameters.pk_ka`), says what was expected and what was found.

The library's entry points check their options with these functions before any long computation;
the workflow also validates the whole config against `config/schema.yaml` at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

from qspflow.errors import ConfigError


def check_keys(section: str, given: Mapping[str, object] | Iterable[str], known: Collection[str]) -> None:
    """Every key given is one of `known` (the first unknown one, sorted, is named)."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(None, key=f"{section}.{unknown[0]}" if section else unknown[0],
                          expected=f"one of the keys {sorted(known)}")


def choice(key: str, value: object, allowed: Collection[str]) -> str:
    """`value` is one of `allowed`."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(None, key=key, expected=f"one of {list(allowed)}", found=value)
    return value


def integer(key: str, value: object, minimum: int | None = None) -> int:
    """`value` is an integer (not a bool), at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise ConfigError(None, key=key, expected="an integer" + (f" ≥ {minimum}" if minimum is not None else ""),
                          found=value)
    return value


def number(key: str, value: object, *, minimum: float | None = None, positive: bool = False,
           maximum: float | None = None) -> float:
    """`value` is a finite number (int or float, not a bool or text); > 0 when `positive`, within
    [minimum, maximum] when given."""
    finite = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value))
    ok = finite and not (positive and value <= 0) and not (minimum is not None and value < minimum) \
        and not (maximum is not None and value > maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            expected = f"a number in [{minimum:g}, {maximum:g}]"
        elif positive:
            expected = "a number > 0"
        elif minimum is not None:
            expected = f"a number ≥ {minimum:g}"
        else:
            expected = "a finite number"
        raise ConfigError(None, key=key, expected=expected, found=value)
    return float(value)


def flag(key: str, value: object) -> bool:
    """`value` is true or false."""
    if not isinstance(value, bool):
        raise ConfigError(None, key=key, expected="true or false", found=value)
    return value


def names(key: str, value: object) -> tuple[str, ...]:
    """`value` is a list of names (strings); an empty list is allowed."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(None, key=key, expected="a list of names", found=value)
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(None, key=key, expected="a list of names", found=item)
    return items
