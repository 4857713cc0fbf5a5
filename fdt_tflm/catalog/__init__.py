"""Cost catalogs of TFLM operators (re-exports only; each catalog lives in its own module).

Re-exports resolve on first use (PEP 562), so that ``fdt_tflm.ir`` may import one catalog
module while another catalog module imports ``fdt_tflm.ir``."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "InstructionCost": "instructions", "op_instructions": "instructions", "predict_instructions": "instructions",
    "CATALOG": "ops", "CREATED": "ops", "MacKind": "ops", "OpInfo": "ops", "Roles": "ops", "ScratchKind": "ops",
    "info": "ops", "tail_bytes": "ops",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
