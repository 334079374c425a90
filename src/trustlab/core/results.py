"""Typed, frozen results that serialise to JSON and back.

Every check returns a subclass of :class:`Result` declaring a unique ``kind``. Fields hold
JSON-native values only (numbers, strings, booleans, None, tuples, str-keyed dicts, nested
results), so ``Result.from_dict(r.to_dict()) == r``. Non-finite floats are written as
``{"$float": "inf"}`` because JSON has no NaN or infinity.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar

_RESULT_TYPES: dict[str, type[Result]] = {}
_FLOAT_TAG = "$float"


@dataclasses.dataclass(frozen=True)
class Result:
    """Base of every check's result. Subclasses are frozen dataclasses with a class-level ``kind``."""

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
    def from_dict(cls, data: dict[str, Any]) -> Result:
        kind = data.get("kind")
        if kind not in _RESULT_TYPES:
            _import_result_producers()
        if kind not in _RESULT_TYPES:
            raise ValueError(f"unknown result kind {kind!r}; known: {', '.join(sorted(_RESULT_TYPES))}")
        target = _RESULT_TYPES[kind]
        names = {f.name for f in dataclasses.fields(target)}
        values = {k: _decode(v) for k, v in data.items() if k in names}
        return target(**values)

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls.from_dict(json.loads(text))


def result_kinds() -> list[str]:
    _import_result_producers()
    return sorted(_RESULT_TYPES)


def _import_result_producers() -> None:
    """Result classes register when their module is imported; the report's section registry
    imports every producer, so reading results never depends on what was imported before."""
    import trustlab.report.sections  # noqa: F401


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, Result):
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
        if "kind" in value and isinstance(value["kind"], str) and value["kind"] in result_kinds():
            return Result.from_dict(value)
        return {k: _decode(v) for k, v in value.items()}
    return value
