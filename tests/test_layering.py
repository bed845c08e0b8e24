"""The package's layers run one way: data -> model dir -> evaluation -> engine -> export and
predict. A lower layer importing a higher one is how cycles and hidden coupling start."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "odapi"
DEPLOYMENT = ("export", "export_readme", "tflite", "onnx_model", "measure", "detectors",
              "predict", "cli")  # the top: exported models and the commands
HIGHER = {  # a layer, and what it must never import
    "data": ("engine", "evaluation", "model_dir", *DEPLOYMENT),
    "model_dir": ("engine", "evaluation", "data", *DEPLOYMENT),
    "evaluation": ("engine", *DEPLOYMENT),
    "run_report": ("engine", *DEPLOYMENT),  # reads a model dir and its evaluation's files
    "engine": DEPLOYMENT,
}


def imported_modules(path: Path) -> set[str]:
    """Every odapi module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "odapi":  # from odapi import x
            found |= {f"odapi.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("odapi"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("odapi")}
    return found


@pytest.mark.parametrize("layer", sorted(HIGHER))
def test_a_layer_imports_nothing_above_it(layer):
    wrong = []
    folder = PACKAGE / layer
    for path in sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]:
        for module in imported_modules(path):
            part = module.split(".")[1] if module.count(".") else ""
            if part in HIGHER[layer]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not wrong, "\n".join(wrong)
