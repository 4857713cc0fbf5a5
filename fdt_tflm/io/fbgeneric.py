"""Generic conversion between TFLite flatbuffer tables and plain Python values.

The `tflite` package ships flatc-generated readers and builder functions for
every table of the schema, but no object API.  Instead of a hand-written list
of option types (which silently drops anything not on the list), we walk the
generated reader class by introspection and call the matching generated
builder functions.  This handles every builtin option type, the second options
union, sparsity parameters and custom quantisation details the same way.

A table becomes a :class:`Table` (type name + ordered field dict).  Field
values are: int/float/bool scalars, ``bytes`` for strings, ``numpy`` arrays for
scalar vectors, :class:`Table` for sub-tables and unions, ``list`` of Table or
bytes for vectors of tables or strings.  Absent fields are simply not in the
dict, so presence survives a round trip.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import flatbuffers
import numpy as np

from ..errors import FdtError
from ..ir.table import Table

# Union fields in the schema: field name -> enum class that names member tables.
_UNION_ENUMS = {
    "BuiltinOptions": ("tflite.BuiltinOptions", "BuiltinOptions"),
    "BuiltinOptions2": ("tflite.BuiltinOptions2", "BuiltinOptions2"),
    "Details": ("tflite.QuantizationDetails", "QuantizationDetails"),
    "ArraySegments": ("tflite.SparseIndexVector", "SparseIndexVector"),
    "ArrayIndices": ("tflite.SparseIndexVector", "SparseIndexVector"),
}
_SKIP = {"Init", "GetRootAs"}


@lru_cache(maxsize=None)
def _module(type_name: str):
    return importlib.import_module(f"tflite.{type_name}")


@lru_cache(maxsize=None)
def _reader_fields(type_name: str) -> tuple[tuple[str, str], ...]:
    """(field name, kind) in schema order; kind: vector-num, vector-obj, string, union, table, scalar."""
    cls = getattr(_module(type_name), type_name)
    names = [n for n in cls.__dict__ if not n.startswith("_") and callable(cls.__dict__[n])]
    name_set = set(names)
    out = []
    for n in names:
        if n in _SKIP or n.startswith("GetRootAs") or n.endswith("BufferHasIdentifier"):
            continue
        if any(n.endswith(suf) and n[: -len(suf)] in name_set for suf in ("AsNumpy", "Length", "IsNone")):
            continue
        if n + "Length" in name_set:
            out.append((n, "vector-num" if n + "AsNumpy" in name_set else "vector-obj"))
        else:
            src = inspect.getsource(cls.__dict__[n])
            kind = ("string" if "self._tab.String(" in src else "union" if "self._tab.Union(" in src
                    else "table" if "self._tab.Indirect(" in src else "scalar")
            out.append((n, kind))
    return tuple(out)


@lru_cache(maxsize=None)
def _union_member(field_name: str, code: int) -> str:
    mod, cls = _UNION_ENUMS[field_name]
    enum = getattr(importlib.import_module(mod), cls)
    for k, v in vars(enum).items():
        if not k.startswith("_") and v == code:
            return k
    raise ValueError(f"unknown {field_name} union member {code}")


@dataclass
class ReadBudget:
    """How many bytes a read may materialise.  A corrupt file whose offsets point many times
    at the same vector or table would otherwise expand into far more memory and time than
    its own size (each table costs 4 bytes, each vector its elements)."""

    limit: int
    used: int = 0

    def charge(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise FdtError(f"corrupt TFLite flatbuffer: its tables and vectors claim more than "
                           f"{self.limit:,} bytes (offsets point at the same data many times, or a "
                           f"length field is wrong)")


def read_table(obj: Any, type_name: str, budget: Optional[ReadBudget] = None) -> Table:
    """Convert a generated reader object into a :class:`Table` (``budget``: bound on what it may read)."""
    budget = budget if budget is not None else ReadBudget(1 << 62)
    budget.charge(4)
    t = Table(type_name)
    for name, kind in _reader_fields(type_name):
        if kind.startswith("vector"):
            if getattr(obj, name + "IsNone")():
                continue
            if kind == "vector-num":
                arr = getattr(obj, name + "AsNumpy")()
                if isinstance(arr, int):  # present but empty
                    arr = _empty_vector(obj, name)
                budget.charge(arr.nbytes)
                t.fields[name] = np.array(arr, copy=True)
            else:
                n = getattr(obj, name + "Length")()
                budget.charge(4 * n)
                items = [getattr(obj, name)(i) for i in range(n)]
                t.fields[name] = [_read_obj(x, budget) for x in items]
            continue
        val = getattr(obj, name)()
        if val is None:
            continue
        if name in _UNION_ENUMS:
            code = getattr(obj, name + "Type")()
            if code == 0:
                continue
            member = _union_member(name, code)
            sub = getattr(_module(member), member)()
            sub.Init(val.Bytes, val.Pos)
            t.fields[name] = read_table(sub, member, budget)
        elif hasattr(val, "_tab"):
            t.fields[name] = read_table(val, type(val).__name__, budget)
        else:
            if isinstance(val, (bytes, str)):
                budget.charge(len(val))
            t.fields[name] = val
    return t


def _empty_vector(obj: Any, name: str) -> np.ndarray:
    # Element type of an empty vector: read it from the accessor's source flags.
    src = inspect.getsource(getattr(type(obj), name + "AsNumpy"))
    for flag, dt in (("Int8Flags", np.int8), ("Uint8Flags", np.uint8), ("Int16Flags", np.int16),
                     ("Uint16Flags", np.uint16), ("Int32Flags", np.int32), ("Uint32Flags", np.uint32),
                     ("Int64Flags", np.int64), ("Uint64Flags", np.uint64), ("Float32Flags", np.float32),
                     ("Float64Flags", np.float64), ("BoolFlags", np.bool_)):
        if flag in src:
            return np.zeros(0, dtype=dt)
    return np.zeros(0, dtype=np.uint8)


def _read_obj(x: Any, budget: ReadBudget) -> Any:
    if isinstance(x, (bytes, str)):
        budget.charge(len(x))
        return x if isinstance(x, bytes) else x.encode()
    return read_table(x, type(x).__name__, budget)


def write_table(builder: flatbuffers.Builder, t: Table) -> int:
    """Serialise a :class:`Table` with the generated builder functions; returns its offset."""
    mod = _module(t.type_name)
    prepared: dict[str, Any] = {}
    for name, val in t.fields.items():
        if isinstance(val, Table):
            prepared[name] = write_table(builder, val)
        elif isinstance(val, bytes):
            prepared[name] = builder.CreateString(val)
        elif isinstance(val, np.ndarray):
            prepared[name] = write_numpy_vector(builder, val)
        elif isinstance(val, list):
            offs = [write_table(builder, v) if isinstance(v, Table) else builder.CreateString(v) for v in val]
            prepared[name] = write_offset_vector(builder, offs)
        else:
            prepared[name] = val
    getattr(mod, "Start")(builder)
    for name, val in prepared.items():
        getattr(mod, "Add" + name)(builder, val)
    return getattr(mod, "End")(builder)


def write_numpy_vector(builder: flatbuffers.Builder, arr: np.ndarray, alignment: int = 0) -> int:
    """A scalar vector; ``alignment`` forces the data start alignment (TFLM wants 16 for tensor data)."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    data = arr.tobytes()
    n = arr.size
    builder.StartVector(arr.dtype.itemsize, n, max(alignment, arr.dtype.itemsize))
    builder.head = builder.head - len(data)
    builder.Bytes[builder.head: builder.head + len(data)] = data
    return builder.EndVector()


def write_offset_vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()
