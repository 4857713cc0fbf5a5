"""The package's layers import in one direction only (issue #19):

    errors, effort -> ir -> io -> catalog -> tflm_model (the TFLM model per Target)
      -> passes (memory, tiling) and the reference evaluator
      -> verify / firmware / device (and analysis, report, plot)
      -> pipeline -> api / cli

Every import counts, including the ones inside functions (a lazy import is still a
dependency); only ``if TYPE_CHECKING:`` blocks, which never run, are left out.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fdt_tflm"
LAYER: dict[str, int] = {
    "errors": 0, "effort": 0, "version": 0, "ir": 1, "io": 2, "catalog": 3, "tflm_model": 4,
    "memory": 5, "tiling": 5, "reference": 5,
    "verify": 6, "firmware": 6, "device": 6, "analysis": 6, "report": 6, "plot": 6,
    "pipeline": 7, "api": 8, "cli": 8, "__init__": 9, "__main__": 9,
}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(path: Path, package_dir: Path) -> list[tuple[int, str]]:
    """(line, imported fdt_tflm module or name) of every runtime import in ``path``."""
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
            names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            out += [(node.lineno, n) for n in names if n.startswith("fdt_tflm.")]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("fdt_tflm.")]
    return out


def _layer_of(module_parts: list[str]) -> str:
    return module_parts[1] if len(module_parts) > 1 else "__init__"


def violations(package_dir: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        me = _layer_of(parts if parts[-1] != "__init__" or len(parts) > 2 else parts[:1])
        for line, name in _imports(path, package_dir):
            other = _layer_of(name.split("."))
            if LAYER[other] > LAYER[me]:
                bad.append(f"{path.relative_to(package_dir)}:{line} ({me}) imports {name} ({other})")
    return bad


def test_every_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    tops -= {"__pycache__"}
    assert tops <= set(LAYER), sorted(tops - set(LAYER))


def test_imports_go_one_way():
    assert violations() == []


def test_the_contract_sees_lazy_imports(tmp_path):
    """Not vacuous: an import inside a function against the direction is found; one under
    TYPE_CHECKING is not."""
    pkg = tmp_path / "fdt_tflm"
    (pkg / "catalog").mkdir(parents=True)
    (pkg / "catalog" / "probe.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..api import Result\n"
        "def f():\n    from ..pipeline import run\n    return run\n")
    assert violations(pkg) == ["catalog/probe.py:5 (catalog) imports fdt_tflm.pipeline (pipeline)"]
