"""Rewrite each dvc.yaml stage's code deps as the import closure of its script.

Run it after moving an import: `.venv/bin/python scripts/code_deps.py` (from the project
root). tests/study/test_dvc.py checks that the deps equal the closures; this writes them, keeping
every other line of dvc.yaml (comments, data deps, params, outs) as it is.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.importgraph import import_closure  # noqa: E402


def ordered(closure: set[str], script: str) -> list[str]:
    """The script, then the other stage files, then the library, each sorted."""
    stages = sorted(p for p in closure if p.startswith("stages/") and p != script)
    return [script, *stages, *sorted(p for p in closure if p.startswith("lottery/"))]


def rewrite(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    script = None
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"\s*cmd: python (stages/\S+\.py)", line):
            script = m.group(1)
        out.append(line)
        if script and re.match(r"\s*deps:\s*$", line):
            i += 1
            indent = re.match(r"(\s*)-", lines[i]).group(1)  # type: ignore[union-attr]
            while i < len(lines) and re.match(rf"{indent}- (stages|lottery)/\S+\.py\s*$", lines[i]):
                i += 1
            out.extend(
                f"{indent}- {p}" for p in ordered(import_closure(ROOT / script, ROOT), script)
            )
            script = None
            continue
        i += 1
    return "\n".join(out)


if __name__ == "__main__":
    path = ROOT / "dvc.yaml"
    path.write_text(rewrite(path.read_text()))
    print(f"rewrote the code deps of {path.relative_to(ROOT)}")
