"""Typed, frozen results that serialise to JSON and back.

Every check returns a subclass of :class:`Result` declaring a unique ``kind``; a part of a result
with a fixed shape (a per-class row, one detector's metrics on one set) is a :class:`Record`.
Fields hold JSON-native values only (numbers, strings, booleans, None, tuples, str-keyed dicts,
nested records), so ``Result.from_dict(r.to_dict()) == r``. Non-finite floats are written as
``{"$float": "inf"}`` because JSON has no NaN or infinity.

A kind is known once the module defining it has been imported; whoever reads results written by
another process imports the capabilities first (``trustlab.capabilities.load_views``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar

_RESULT_TYPES: dict[str, type[Record]] = {}
_FLOAT_TAG = "$float"


@dataclasses.dataclass(frozen=True)
class Record:
    """A frozen dataclass with a class-level ``kind`` that serialises to JSON and back."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind:
            if kind in _RESULT_TYPES and _RESULT_TYPES[kind].__qualname__ != cls.__qualname__:
                raise TypeError(f"result kind {kind!r} is already used by {_RESULT_TYPES[kind].__qualname__}")
            _RESULT_TYPES[kind] = cls

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for field in dataclasses.fields(self):
            out[field.name] = _encode(getattr(self, field.name), f"{self.kind}.{field.name}")
        return out

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        kind = data.get("kind")
        if kind not in _RESULT_TYPES:
            raise ValueError(f"unknown result kind {kind!r}; known: {', '.join(sorted(_RESULT_TYPES))}")
        target = _RESULT_TYPES[kind]
        names = {f.name for f in dataclasses.fields(target)}
        values = {k: _decode(v) for k, v in data.items() if k in names}
        return target(**values)

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class Result(Record):
    """Base of every check's result: what a check returns and a run directory stores by name.
    Each result kind has a view (``trustlab.core.views``). ``measures_model`` is False for
    results that hold no measurement of the model (its card, a failed check's record, the
    scorecard): a run directory holding only those is not claimed by its model."""

    measures_model: ClassVar[bool] = True


def result_kinds() -> list[str]:
    """Kinds of the check results registered so far (records inside results excluded)."""
    return sorted(k for k, cls in _RESULT_TYPES.items() if issubclass(cls, Result))


def record_type(kind: str) -> type[Record]:
    """The registered record or result class of ``kind`` (KeyError if its module is not imported)."""
    return _RESULT_TYPES[kind]


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_FLOAT_TAG: repr(value)}
    if isinstance(value, (tuple, list)):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: dict keys must be strings")
        return {k: _encode(v, where) for k, v in value.items()}
    raise TypeError(
        f"{where}: {type(value).__name__} is not JSON-native; convert it (e.g. .tolist()) when building the result"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        if set(value) == {_FLOAT_TAG}:
            return float(value[_FLOAT_TAG])
        if isinstance(value.get("kind"), str) and value["kind"] in _RESULT_TYPES:
            return Record.from_dict(value)
        return {k: _decode(v) for k, v in value.items()}
    return value
