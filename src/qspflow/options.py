"""Option checking in one style: every message names the key as the user writes it in a study
config (`calibrate.starts`, `drug.parameters.pk_ka`), says what was expected and what was found.

The library's entry points check their options with these functions before any long computation;
the workflow also validates the whole config against `config/schema.yaml` at start-up.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection, Iterable, Mapping

from qspflow.errors import ConfigError


def check_keys(section: str, given: Mapping[str, object] | Iterable[str], known: Collection[str]) -> None:
    """Every key given is one of `known` (the first unknown one, sorted, is named)."""
    unknown = sorted(map(str, set(given) - set(known)))
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


def _with_defaults(validator_class: type) -> type:
    """A jsonschema validator class that also fills in every `default` of the schema's properties."""
    from jsonschema import validators

    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, schema_properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in schema_properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, schema_properties, instance, schema)

    return validators.extend(validator_class, {"properties": properties})


_NOUNS = {"integer": "an integer", "number": "a number", "string": "text", "boolean": "true or false",
          "array": "a list", "object": "a mapping of keys", "null": "null"}


def _describe(error) -> tuple[str, str, object]:
    """(key as the user writes it, what was expected, what was found) for one schema violation."""
    path = [str(p) for p in error.absolute_path]
    schema, kind = error.schema, error.validator
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(schema.get("properties", {})))
        return ".".join([*path, extra[0]]), f"one of the keys {sorted(schema.get('properties', {}))}", None
    if kind == "required":
        missing = [m for m in schema["required"] if m not in error.instance]
        return ".".join([*path, missing[0]]), "this key (it has no default)", None
    key = ".".join(path) or "(the config)"
    if kind == "enum":
        return key, f"one of {schema['enum']}", error.instance
    if kind == "type":
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return key, " or ".join(_NOUNS.get(t, t) for t in types), error.instance
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}[kind]
        return key, f"{_NOUNS.get(schema.get('type'), 'a number')} {sign} {schema[kind]}", error.instance
    if kind == "pattern":
        return key, f"text matching {schema['pattern']}", error.instance
    if kind in ("minItems", "maxItems"):
        return key, f"a list of {schema.get('minItems', 0)} to {schema.get('maxItems', 'any number of')} items", \
            error.instance
    return key, (schema.get("description") or error.message).split(". ")[0], error.instance


def validated_config(config: Mapping[str, object], schema: Mapping[str, object],
                     source: str | None = None) -> dict[str, object]:
    """The study config checked against the JSON schema, with every default filled in.

    A violation raises `ConfigError` naming the key as the user writes it (`calibrate.starts`), the
    allowed values and what was found, on one line — never the schema itself.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    filled = copy.deepcopy(dict(config))
    error = best_match(_with_defaults(Draft202012Validator)(schema).iter_errors(filled))
    if error is not None:
        key, expected, found = _describe(error)
        raise ConfigError(source, key=key, expected=expected, found=found)
    return filled
