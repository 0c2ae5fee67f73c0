"""What the project exposes: every documented `mlflow server` binds to localhost; no home
paths or secrets in the committed files, a study's files or its MLflow runs."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, run
from tests.helpers import all_runs, local_store, mlflow_client

# Built from parts so that this file itself never matches what it looks for.
HOME_PATTERNS = ("/" + "root" + "/", "/" + "home" + "/")
SECRET_WORDS = ("pass" + "word", "tok" + "en", "sec" + "ret")


def mlflow_server_commands(text: str) -> list[str]:
    """Each `mlflow server ...` command in a text, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [m.group(0) for m in re.finditer(r"mlflow server(?:[ \t]+-[^\n`]*)?", joined)]


def test_every_documented_mlflow_server_binds_to_localhost() -> None:
    places = [ROOT / "README.md", ROOT / "docs", ROOT / "scripts", ROOT / "lottery"]
    files: list[Path] = []
    for place in places:
        if place.is_file():
            files.append(place)
        elif place.is_dir():
            files += [p for p in place.rglob("*") if p.is_file() and p.suffix != ".pyc"]
    commands: list[tuple[Path, str]] = []
    for path in files:
        for cmd in mlflow_server_commands(path.read_text(errors="replace")):
            commands.append((path, cmd))
    assert any(p.name == "scaling.md" for p, _ in commands), "docs/scaling.md shows no server"
    for path, cmd in commands:
        assert "0.0.0.0" not in cmd and "--host ::" not in cmd, f"{path}: {cmd}"
        if re.search(r"\s-", cmd):  # a command with options: it must name the host
            assert re.search(r"(--host|-h)[ =]127\.0\.0\.1\b", cmd), f"{path}: {cmd}"


def test_no_home_paths_or_secrets(tiny_study: Path) -> None:
    home = str(Path.home()).rstrip("/") + "/"
    patterns = (*HOME_PATTERNS, home) if home != "/" else HOME_PATTERNS
    committed = run(ROOT, "git", "ls-files").stdout.split()
    texts: dict[str, str] = {}
    for rel in committed:
        path = ROOT / rel
        if path.is_file() and path.stat().st_size < 2_000_000 and not rel.endswith(".gz"):
            texts[f"repo:{rel}"] = path.read_text(errors="replace")
    for rel in ["params.yaml", "dvc.lock", *run(tiny_study, "git", "ls-files").stdout.split()]:
        path = tiny_study / rel
        if path.is_file() and not rel.endswith(".gz"):
            texts[f"study:{rel}"] = path.read_text(errors="replace")
    for path in sorted((tiny_study / "artifacts").rglob("*.json")) + sorted(
        (tiny_study / "metrics").rglob("*.json")
    ):
        texts[f"study:{path.relative_to(tiny_study)}"] = path.read_text()
    for name, text in texts.items():
        for pattern in patterns:
            assert pattern not in text, f"{name} contains {pattern!r}"

    client = mlflow_client(local_store(tiny_study))
    runs = all_runs(client)
    assert runs
    for r in runs:
        for kind, items in (("tag", r.data.tags), ("param", r.data.params)):
            for key, value in items.items():
                where = f"run {r.info.run_id} {kind} {key}={value!r}"
                for pattern in patterns:
                    assert pattern not in value, where
                for word in SECRET_WORDS:
                    assert word not in key.lower() and word not in value.lower(), where
    params_text = (tiny_study / "params.yaml").read_text().lower()
    for word in SECRET_WORDS:
        assert word not in params_text
