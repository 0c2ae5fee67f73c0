"""The library stays made of small units: no function of lottery/, stages/ or scripts/ over
50 lines (tests may be longer)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 50


def long_functions(files: list[Path]) -> list[str]:
    """'path:line name (N lines)' for every function longer than MAX_LINES."""
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    found.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_over_50_lines() -> None:
    files = [p for d in ("lottery", "stages", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 30
    assert long_functions(files) == []


def test_the_check_sees_a_long_function_and_passes_a_short_one(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"class A:\n    def too_long(self) -> None:\n{body}\n")
    (tmp_path / "short.py").write_text("def fine() -> None:\n    pass\n")
    found = long_functions([tmp_path / "long.py", tmp_path / "short.py"])
    assert found == [f"long.py:2 too_long ({MAX_LINES + 1} lines)"]
