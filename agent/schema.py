"""Build frozen dataclasses from TOML tables, checking keys and types.

The one machinery behind every table of the agent config (``[agent]``, ``[web]``...,
and each ``[drivers.<backend>]`` table). A problem is one line naming the file and
the key: ``agent.toml: unknown key 'drivers.sane.rescan_intervall'``,
``agent.toml: drivers.ipp.poll_interval must be a number, not str``.

Pure Python: driver option classes use it without importing any native library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, get_args, get_origin, get_type_hints

from agent.errors import ConfigError

#: A dataclass may name the allowed values of its string fields:
#: ``CHOICES: ClassVar[Mapping[str, tuple[str, ...]]] = {"tls": ("pin", "verify", "off")}``.
CHOICES_ATTRIBUTE = "CHOICES"


def build_table(cls: type[Any], data: Mapping[str, Any], where: str, file: str,
                skip: frozenset[str] = frozenset({"source"})) -> Any:
    """``cls(**data)`` after checking every key against the fields of ``cls`` and every value
    against its type hint. ``where`` is the dotted name of the table (``""`` at top level)."""
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.name not in skip}
    choices: Mapping[str, tuple[str, ...]] = getattr(cls, CHOICES_ATTRIBUTE, {})
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in known:
            raise ConfigError(f"{file}: unknown key {name!r}")
        kwargs[key] = check_value(value, hints[key], name, file)
        allowed = choices.get(key)
        if allowed is not None and kwargs[key] not in allowed:
            raise ConfigError(f"{file}: {name} must be {_one_of(allowed)}, not {value!r}")
    return cls(**kwargs)


def _one_of(allowed: tuple[str, ...]) -> str:
    quoted = [f'"{a}"' for a in allowed]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def check_value(value: Any, hint: Any, where: str, file: str) -> Any:
    """``value`` converted to ``hint`` (int -> float), or a :class:`ConfigError` naming ``where``."""
    origin = get_origin(hint)
    if is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{file}: [{where}] must be a table")
        return build_table(hint, value, where, file)
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{file}: {where} must be a list, not {type(value).__name__}")
        return [check_value(v, item, f"{where}[{i}]", file) for i, v in enumerate(value)]
    if origin is dict:
        _, item = get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{file}: [{where}] must be a table")
        return {str(k): check_value(v, item, f"{where}.{k}", file) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{file}: {where} must be a number, not {type(value).__name__}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{file}: {where} must be an integer, not {type(value).__name__}")
        return value
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise ConfigError(f"{file}: {where} must be a {hint.__name__}, not {type(value).__name__}")
        return value
    return value  # Any: taken as it is (e.g. SANE option values)
