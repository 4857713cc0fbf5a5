"""An opaque flatbuffer table carried through the IR (option tables, sparsity, ...)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Table:
    """A flatbuffer table of schema type ``type_name`` with its present fields."""

    type_name: str
    fields: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table) or other.type_name != self.type_name:
            return False
        if self.fields.keys() != other.fields.keys():
            return False
        return all(_value_eq(self.fields[k], other.fields[k]) for k in self.fields)

    def copy(self) -> "Table":
        return Table(self.type_name, {k: _copy_value(v) for k, v in self.fields.items()})


def _value_eq(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and np.array_equal(a, b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_value_eq(x, y) for x, y in zip(a, b))
    return a == b


def _copy_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, Table):
        return v.copy()
    if isinstance(v, list):
        return [_copy_value(x) for x in v]
    return v
