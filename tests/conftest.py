"""Shared fixtures: the real models in ../shared/models (skipped with a reason when absent)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
PROJECT_MODELS = REPO / "models"


def shared_model_paths() -> list[Path]:
    return sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else []


def shared_params():
    """Parametrize over the shared models; one skipped case with the reason when the folder is absent."""
    paths = shared_model_paths()
    if not paths:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED_MODELS} not found (shared models absent)"))]
    return [pytest.param(p, id=p.stem) for p in paths]


def measured_heads() -> dict[str, tuple[int, int]]:
    """TFLM's measured (head, total) per shared model, from SOURCES.md's table."""
    out = {}
    src = SHARED_MODELS / "SOURCES.md"
    if not src.exists():
        return out
    for line in src.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 4 and cells[0].endswith(".tflite") and cells[2].isdigit():
            out[cells[0][:-len(".tflite")]] = (int(cells[2]), int(cells[3]))
    return out


@pytest.fixture
def optimize_calls(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Replaces ``fdt_tflm.api.optimize`` by a stub that records its keyword arguments and stops
    with an FdtError (bad input: exit 2), to check what a CLI command passes on."""
    import fdt_tflm.api
    from fdt_tflm.errors import FdtError
    seen: dict = {}

    def fake_optimize(path, **kw):
        seen.update(kw)
        raise FdtError("stopped by the test")
    monkeypatch.setattr(fdt_tflm.api, "optimize", fake_optimize)
    return seen
