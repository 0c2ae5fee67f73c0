"""The library's shape: packages in layers, small units, and stages that import only what they
run.

- Packages, low to high: core < data < engine < tracking < analysis < report < study < audit <
  bench < cli. A module imports only its own package or lower ones (imports inside functions
  count; `if TYPE_CHECKING:` blocks do not run and do not count), and no two modules import
  each other, directly or around a cycle.
- `core` loads no TensorFlow, MLflow, matplotlib or pandas; the training stages import no
  report, figure or analysis code; `prepare` and `init` load neither TensorFlow nor MLflow.
- `__init__.py` files hold a docstring only, so importing one module loads nothing else.
- No module over 400 lines, no class over about 100 (110) and no function over 50, outside
  tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.importgraph import PACKAGE, import_closure, imported_names, module_file

ROOT = Path(__file__).resolve().parents[1]
#: Classes: about 100 lines (a path table such as `core.paths.Layout` needs a few more).
MAX_FUNCTION, MAX_CLASS, MAX_MODULE = 50, 110, 400
LAYERS = (
    "core",
    "data",
    "engine",
    "tracking",
    "analysis",
    "report",
    "study",
    "audit",
    "bench",
    "cli",
)
HEAVY = ("tensorflow", "keras", "mlflow", "matplotlib", "pandas", "scipy.stats")


def library_files(root: Path = ROOT) -> list[Path]:
    return sorted((root / PACKAGE).rglob("*.py"))


def layer_of(path: Path, root: Path = ROOT) -> str:
    """The package a library file belongs to (`cli` for lottery/cli.py)."""
    parts = path.relative_to(root / PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def project_imports(path: Path, root: Path = ROOT) -> set[Path]:
    """The project files `path` imports itself (not through others)."""
    found = set()
    for name in imported_names(path, root):
        parts = name.split(".")
        for i in range(2, len(parts) + 1):
            f = module_file(root, ".".join(parts[:i]))
            if f is not None and f.name != "__init__.py":
                found.add(f)
    return found


def layering_violations(root: Path = ROOT) -> list[str]:
    out = []
    for path in library_files(root):
        if path.name == "__init__.py":
            continue
        mine = LAYERS.index(layer_of(path, root))
        for dep in project_imports(path, root):
            theirs = layer_of(dep, root)
            if LAYERS.index(theirs) > mine:
                rel = path.relative_to(root).as_posix()
                out.append(f"{rel} imports {dep.relative_to(root).as_posix()} ({theirs} is above)")
    return out


def cycles(root: Path = ROOT) -> list[list[str]]:
    """Every import cycle between library modules (each reported once, from its least name)."""
    graph = {p: project_imports(p, root) for p in library_files(root)}
    names = {p: p.relative_to(root).as_posix() for p in graph}
    found: set[tuple[str, ...]] = set()

    def walk(node: Path, path: list[Path]) -> None:
        for dep in graph.get(node, ()):
            if dep in path:
                loop = [names[p] for p in path[path.index(dep) :]]
                i = loop.index(min(loop))
                found.add(tuple(loop[i:] + loop[:i]))
            elif len(path) < 12:
                walk(dep, [*path, dep])

    for start in graph:
        walk(start, [start])
    return [list(c) for c in sorted(found)]


def test_packages_import_only_their_own_layer_or_lower() -> None:
    assert {layer_of(p) for p in library_files()} - {"__init__"} == set(LAYERS)
    assert layering_violations() == []


def test_no_module_imports_itself_through_a_cycle() -> None:
    assert cycles() == []


def test_the_layer_and_cycle_checks_see_a_violation(tmp_path: Path) -> None:
    files = {
        "lottery/__init__.py": "",
        "lottery/core/__init__.py": "",
        "lottery/core/a.py": "def f():\n    from lottery.report import b\n",
        "lottery/report/__init__.py": "",
        "lottery/report/b.py": "from lottery.core import a\n",
        "lottery/report/c.py": "from lottery.core import a\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert layering_violations(tmp_path) == [
        "lottery/core/a.py imports lottery/report/b.py (report is above)"
    ]
    assert cycles(tmp_path) == [["lottery/core/a.py", "lottery/report/b.py"]]


def third_party(paths: set[str], root: Path = ROOT) -> set[str]:
    """The heavy libraries the files `paths` import (at any depth of their code)."""
    names = {n for p in paths if p.endswith(".py") for n in imported_names(root / p, root)}
    return {h for h in HEAVY if any(n == h or n.startswith(h + ".") for n in names)}


def test_core_loads_no_heavy_library() -> None:
    core = {p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE / "core").glob("*.py")}
    assert third_party(core) == set()


@pytest.mark.parametrize(
    ("script", "forbidden_packages", "forbidden_libraries"),
    [
        ("stages/prepare.py", {"engine", "tracking", "analysis", "report"}, set(HEAVY)),
        ("stages/init.py", {"engine", "tracking", "analysis", "report"}, set(HEAVY)),
        ("stages/train.py", {"analysis", "report", "audit", "bench"}, {"matplotlib", "pandas"}),
        (
            "stages/visualise.py",
            {"engine", "tracking", "audit", "bench"},
            {"tensorflow", "mlflow", "scipy.stats"},
        ),
        ("stages/report.py", {"engine", "audit", "bench"}, {"tensorflow", "scipy.stats"}),
    ],
)
def test_stages_import_only_what_they_run(
    script: str, forbidden_packages: set[str], forbidden_libraries: set[str]
) -> None:
    closure = import_closure(ROOT / script, ROOT)
    packages = {
        p.split("/")[1] for p in closure if p.startswith(f"{PACKAGE}/") and p.count("/") > 1
    }
    assert packages & forbidden_packages == set()
    assert third_party(closure) & forbidden_libraries == set()


def test_init_files_hold_a_docstring_only() -> None:
    for path in (ROOT / PACKAGE).rglob("__init__.py"):
        body = ast.parse(path.read_text()).body
        code = [
            n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        ]
        assert code == [], f"{path.relative_to(ROOT)} holds code: keep __init__ files empty"
    for package in LAYERS[:-1]:
        assert ast.get_docstring(ast.parse((ROOT / PACKAGE / package / "__init__.py").read_text()))


def long_units(files: list[Path]) -> list[str]:
    """'path:line name (N lines)' for every function over MAX_FUNCTION lines and every class
    over MAX_CLASS, and 'path (N lines)' for every module over MAX_MODULE."""
    found = []
    for path in files:
        text = path.read_text()
        if (n := len(text.splitlines())) > MAX_MODULE:
            found.append(f"{path.name} ({n} lines)")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = MAX_FUNCTION
            elif isinstance(node, ast.ClassDef):
                limit = MAX_CLASS
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_unit_is_too_long() -> None:
    files = [p for d in (PACKAGE, "stages", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 40
    assert long_units(files) == []


def test_the_size_check_sees_long_units_and_passes_short_ones(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION))
    (tmp_path / "long.py").write_text(f"class A:\n    def too_long(self) -> None:\n{body}\n")
    (tmp_path / "short.py").write_text("def fine() -> None:\n    pass\n")
    methods = "\n".join(f"    def m{i}(self) -> None:\n        pass\n" for i in range(40))
    (tmp_path / "big_class.py").write_text(f"class B:\n{methods}")
    (tmp_path / "big.py").write_text("x = 1\n" * (MAX_MODULE + 1))
    found = long_units([tmp_path / f for f in ("long.py", "short.py", "big_class.py", "big.py")])
    assert found == [
        f"long.py:2 too_long ({MAX_FUNCTION + 1} lines)",
        "big_class.py:1 B (120 lines)",
        f"big.py ({MAX_MODULE + 1} lines)",
    ]
