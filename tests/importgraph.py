"""The project's import graph, read with `ast`: what a file can import, at any depth.

Shared by the dvc.yaml code-deps test, the layering test and `scripts/code_deps.py`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "lottery"


def module_file(root: Path, name: str) -> Path | None:
    """The file of module `name` when it is part of this project's package, else None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(path: Path, root: Path) -> Iterator[str]:
    """Every module name `path` can import, at any depth of its code (functions included).

    `from a.b import c` yields `a.b` and `a.b.c` (c may be a module); relative imports are
    resolved against the file's package. Blocks under `if TYPE_CHECKING:` never run and
    are skipped.
    """
    package = path.relative_to(root).with_suffix("").parts[:-1]

    def visit(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from visit_node(other)
            else:
                yield from visit_node(child)

    def visit_node(node: ast.AST) -> Iterator[str]:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        yield from visit(node)

    yield from visit(ast.parse(path.read_text(), str(path)))


def import_closure(script: Path, root: Path) -> set[str]:
    """`script` and every project file it can import (posix paths relative to `root`).

    Importing `lottery.x` also runs `lottery/__init__.py`. A script's own directory is on
    sys.path, so `import _bootstrap` in stages/train.py is stages/_bootstrap.py.
    """
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path, root):
            parts = name.split(".")
            found = [module_file(root, ".".join(parts[:i])) for i in range(1, len(parts) + 1)]
            if path.parent == script.parent:
                found.append(script.parent / f"{parts[0]}.py")
            todo.extend(f for f in found if f is not None and f.is_file())
    return {p.relative_to(root).as_posix() for p in seen}
