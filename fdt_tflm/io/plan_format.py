"""The bytes of TFLM's ``OfflineMemoryAllocation`` metadata (what the reader checks and the
plan pass writes; the plan's meaning and proof live in :mod:`fdt_tflm.tflm_model.offline_plan`).

Layout (little-endian int32): [version, subgraph count, N, offset_0 .. offset_N-1],
N = tensors of all subgraphs together; -1 = plan at run time.
"""
from __future__ import annotations

import numpy as np

from ..errors import FdtError
from ..ir.surgery import OFFLINE_PLAN_METADATA

METADATA_NAME = OFFLINE_PLAN_METADATA.decode()
PLAN_VERSION = 1
ONLINE = -1


class PlanError(FdtError):
    """An offline plan that would make TFLM compute wrong results, or malformed plan bytes."""


def encode_plan(offsets: list[int], n_subgraphs: int = 1) -> bytes:
    return np.array([PLAN_VERSION, n_subgraphs, len(offsets), *offsets], dtype="<i4").tobytes()


def decode_plan(data: bytes) -> list[int]:
    """The offsets of a plan's bytes (PlanError when they are not whole, consistent int32 words)."""
    if len(data) % 4:
        raise PlanError(f"{METADATA_NAME} metadata is malformed ({len(data)} bytes, not whole int32 words)")
    words = np.frombuffer(data, dtype="<i4")
    if words.size < 3 or words[2] != words.size - 3:
        raise PlanError(f"{METADATA_NAME} metadata is malformed ({words.size} words)")
    return [int(x) for x in words[3:]]
