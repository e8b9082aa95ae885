"""What every family's config shares: JSON (de)serialisation of nested dataclasses, versions, and size limits.

A family's config is a dataclass (sub-configs as dataclass fields) stored as JSON in its checkpoints. :func:`from_dict`
rebuilds it from that JSON with every field's type checked against its annotation (``int``, ``float``, ``bool``,
``str``, ``tuple[int, ...]``, ``X | None``, nested dataclasses), so a damaged or hostile config fails with a
message naming the field instead of deep inside a constructor. :func:`check_int` and :func:`check_widths` are the
limits every ``validate()`` applies before a model is built: a 400-byte file must not be able to ask for a
32,768-channel network.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Inner:
    ...     widths: tuple[int, ...] = (8, 16)
    >>> @dataclass
    ... class Outer:
    ...     size: int = 64
    ...     inner: Inner = field(default_factory=Inner)
    >>> from_dict(Outer, {"size": 32, "inner": {"widths": [4, 4]}})
    Outer(size=32, inner=Inner(widths=(4, 4)))
    >>> to_dict(Outer(), version=1)
    {'version': 1, 'size': 64, 'inner': {'widths': [8, 16]}}
    >>> from_dict(Outer, {"size": "big"})
    Traceback (most recent call last):
    ...
    ValueError: Outer.size: expected an integer, got 'big'
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

MAX_SIZE = 4096        # pixels per side of a model's working resolution
MAX_CHANNELS = 4096    # channels of any layer
MAX_LEVELS = 6         # resolution levels of an encoder, decoder or U-Net
MAX_LAYERS = 8         # layers or blocks per level
MAX_FRAMES = 1024      # frames a model is built for
MAX_SEQUENCE = 64      # entries of any list in a config


def to_dict(config: Any, version: int | None = None) -> dict[str, Any]:
    """A dataclass config as JSON-shaped data (nested dicts, tuples as lists), with ``version`` first when given."""
    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data = plain(dataclasses.asdict(config))
    return data if version is None else {"version": version, **data}


def parse_version(value: Any, what: str, current: int) -> int:
    """A stored format version as an int in [1, current]; ValueError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} version must be an integer, got {value!r}")
    try:
        version = int(value)
    except ValueError:
        raise ValueError(f"{what} version must be an integer, got {value!r}") from None
    if version < 1:
        raise ValueError(f"{what} version must be >= 1, got {version}")
    if version > current:
        raise ValueError(f"{what} version {version} is newer than this code ({current}); update the pack")
    return version


def stored_version(data: Any, what: str, current: int) -> int:
    """The ``"version"`` entry of a stored config (``current`` when absent), checked by :func:`parse_version`."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return parse_version(data.get("version", current), what, current)


def from_dict(cls: type[T], data: Any, *, ignore: Iterable[str] = (), where: str | None = None) -> T:
    """Build the dataclass ``cls`` from JSON data, recursively, checking every value against its field's type.

    Args:
        cls: a dataclass whose fields are annotated with the types listed in the module docstring.
        data: a mapping of field names to values (lists for tuples, mappings for nested dataclasses).
        ignore: top-level keys to skip (notes stored next to the config, e.g. ``"version"``, ``"training"``).
        where: the name used in error messages (default: the class name).

    Raises:
        ValueError: not a mapping, unknown keys, a value of the wrong type, or a list longer than
            :data:`MAX_SEQUENCE`; the message names the field (``GIDConfig.unet.layers_per_block``).
    """
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names - set(ignore))
    if unknown:
        raise ValueError(f"unknown {where} keys: {unknown}")
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items() if k in names}
    return cls(**values)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        (inner,) = [a for a in options if a is not type(None)]
        return _coerce(value, inner, where)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where=where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(value) > MAX_SEQUENCE:
            raise ValueError(f"{where}: expected at most {MAX_SEQUENCE} entries, got {len(value)}")
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} entries, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value  # Any, dict, ...: kept as stored


class StoredConfig:
    """Mixin of a family's top-level config dataclass: JSON with a format version, and ``replace``.

    Subclasses set ``CONFIG_VERSION`` (bump it when stored configs change meaning) and ``CONFIG_NAME`` (for
    messages), and validate themselves in ``__post_init__``.
    """

    CONFIG_VERSION: ClassVar[int] = 1
    CONFIG_NAME: ClassVar[str] = "config"

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self, self.CONFIG_VERSION)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Inverse of :meth:`to_dict`; ValueError on unknown keys, wrong types, limits or a newer version."""
        stored_version(data, cls.CONFIG_NAME, cls.CONFIG_VERSION)
        return from_dict(cls, data, ignore=("version",))

    def replace(self: T, **changes) -> T:
        return dataclasses.replace(self, **changes)


def check_int(name: str, value: int, low: int, high: int) -> None:
    """ValueError unless ``low <= value <= high`` (a config limit, checked before anything is built)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def check_widths(name: str, widths: tuple[int, ...], high: int = MAX_CHANNELS, max_levels: int = MAX_LEVELS,
                 divisor: int = 1) -> None:
    """ValueError unless ``widths`` has 1 to ``max_levels`` entries, each in [1, high] and divisible by ``divisor``."""
    if not isinstance(widths, (tuple, list)) or not 1 <= len(widths) <= max_levels:
        raise ValueError(f"{name} must have 1 to {max_levels} entries, got {widths!r}")
    for i, width in enumerate(widths):
        check_int(f"{name}[{i}]", width, 1, high)
        if width % divisor:
            raise ValueError(f"{name}[{i}] = {width} must be divisible by {divisor} (its norm groups / heads)")
