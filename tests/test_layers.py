"""Imports point one way: model <- inputs, engines <- report <- commands/cli (style guide section 2)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "analyzer"

# package -> analyzer sub-packages it may import
ALLOWED = {
    "model": {"model"},
    "inputs": {"model", "inputs", "errors"},
    "engines": {"model", "engines", "errors"},
    "pipeline": {"model", "inputs", "engines", "pipeline", "errors"},
    "report": {"model", "engines", "report", "errors"},
    "lab": {"model", "inputs", "lab", "errors"},
}


def _analyzer_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "analyzer" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_imports_point_one_way() -> None:
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((PKG / layer).rglob("*.py")):
            extra = _analyzer_imports(path) - allowed
            if extra:
                bad.append(f"{path.relative_to(PKG.parent)} imports analyzer.{sorted(extra)}")
    assert not bad, "\n".join(bad)


def test_model_uses_only_the_standard_library() -> None:
    third_party = {"scapy", "dpkt", "networkx", "jinja2", "click", "numpy"}
    for path in sorted((PKG / "model").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] in third_party for m in mods), path
